//! Opening an engine directory. `docs/lsm.md` ("Recovery") has the steps:
//! 1. take the directory lock;
//! 2. read `CURRENT` and replay its manifest into levels, log number, next file number and last
//!    sequence (a torn last record is an edit that never committed);
//! 3. open every table the manifest names, checking each against its manifest entry;
//! 4. replay every WAL at or above the log number into one memtable (a torn tail of the newest
//!    is cut off; damage in an older one is corruption, and so is damage before the length a
//!    clean close recorded in the manifest);
//! 5. (writable) start a new manifest holding a snapshot and point `CURRENT` at it;
//! 6. (writable) read the compaction logs: a job whose inputs are all live was interrupted, its
//!    recorded outputs are kept and it is queued to resume; then remove every file no committed
//!    edit names: tables, WALs below the log number, other manifests, temporary files, logs of
//!    committed or never-started jobs;
//! 7. (writable) rewrite the newest WAL's good prefix into a fresh file (temp, sync, rename,
//!    directory sync) and keep appending to it, or create one: the prefix was read back, but
//!    may exist only in the page cache (after a crash, or a failed sync), and later records
//!    will vouch for it.
//!
//! With `LsmOptions::salvage`, a writable open whose steps 2 to 4 meet corruption rebuilds the
//! table set first (`crate::repair`) and then runs them again on the rebuilt directory.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use engine_api::{Error, GroupCommit, IoClass, IoCounters, LockMode, Result, Storage};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::compaction::{CompactionManager, Job, LoggedJob, read_log, resumed};
use crate::db::{Background, Inner, SuperVersion, WalTail, Writer};
use crate::filename::{self, FileKind};
use crate::memtable::Memtable;
use crate::obsolete::ObsoleteFiles;
use crate::options::LsmOptions;
use crate::repair::{self, RecoveryReport};
use crate::snapshot::SnapshotList;
use crate::sstable::{BlockCache, Table};
use crate::stats::Counters;
use crate::version::manifest::{read_current, read_manifest};
use crate::version::{FileMeta, ManifestState, Version, VersionEdit, VersionSet, file_meta};
use crate::wal::format::WalBatch;
use crate::wal::{WalContents, WalWriter, read_wal};

/// The state a manifest replay yields.
struct Replayed {
    levels: Vec<BTreeMap<u64, FileMeta>>,
    log_number: u64,
    next_file: u64,
    last_seq: u64,
    /// A WAL's synced length recorded at a clean close.
    wal_synced: Option<(u64, u64)>,
}

/// What the WALs hold.
struct WalReplay {
    batches: Vec<WalBatch>,
    /// The newest WAL and the length of its good prefix.
    newest: Option<(u64, u64)>,
    /// The newest WAL's nonce, if its header survived (a torn tail can take it, and with it
    /// every record: such a WAL holds nothing).
    newest_nonce: Option<u32>,
    /// The live WAL before the newest, with its length.
    before_newest: Option<(u64, u64)>,
}

/// Opens the engine in `dir` (steps 1 to 7).
pub(crate) fn open(
    dir: &Path,
    storage: Arc<dyn Storage>,
    io: Arc<IoCounters>,
    opts: LsmOptions,
) -> Result<(Inner, Vec<Job>)> {
    let read_only = opts.common.read_only;
    if !storage.exists(dir)? && (!opts.common.create_if_missing || read_only) {
        return Err(Error::invalid(format!("{} does not exist", dir.display())));
    }
    if !read_only {
        // Even if it exists: an open cut off before syncing the new directory's parent leaves
        // a name that is not durable yet.
        storage.create_dir_all(dir)?;
    }
    let mode = if read_only {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    let lock = storage.lock(&dir.join(filename::LOCK), mode)?;
    let cache =
        (opts.block_cache_bytes > 0).then(|| Arc::new(BlockCache::new(opts.block_cache_bytes)));
    let obsolete = Arc::new(ObsoleteFiles::new(Arc::clone(&storage), dir.to_path_buf()));
    let mut report = RecoveryReport::default();
    let mut names = storage.list(dir)?;
    let loaded = match load(&*storage, dir, &names, &opts, cache.as_ref()) {
        Err(e) if e.is_corruption() && opts.salvage && !read_only => {
            report = repair::rebuild(&*storage, dir, &opts, &e)?;
            names = storage.list(dir)?;
            load(&*storage, dir, &names, &opts, cache.as_ref())?
        }
        loaded => loaded?,
    };
    let Loaded {
        replayed,
        version,
        wals,
    } = loaded;
    let mut last_seq = replayed.last_seq;
    for b in &wals.batches {
        last_seq = last_seq.max(b.last_seq());
    }
    let next_file = replayed.next_file.max(max_number(dir, &names)? + 1);
    let state = ManifestState {
        current: Arc::new(version),
        log_number: replayed.log_number,
        last_sequence: last_seq,
        wal_synced: replayed.wal_synced,
    };
    let versions = VersionSet::new(
        dir,
        Arc::clone(&storage),
        state,
        next_file,
        opts.manifest_rollover_bytes,
        Arc::clone(&obsolete),
    );
    let mut resumes = Vec::new();
    let compactions = CompactionManager::new();
    let (mem, wal) = if read_only {
        (Memtable::new(), None)
    } else {
        let logs = interrupted_jobs(&*storage, dir, &names, &versions)?;
        resumes = logs.jobs;
        compactions.set_voided_logs(logs.voided);
        versions.roll_manifest()?;
        remove_orphans(&*storage, dir, &versions, &logs.keep)?;
        obsolete.drain();
        let wal = match wals.newest {
            Some((n, valid)) => {
                // A headerless WAL is empty (its header was torn, and every record with it):
                // it gets its header back, so it never becomes an older WAL without one.
                let prev = wals.before_newest.unwrap_or((0, 0));
                WalWriter::reopen(&*storage, dir, n, valid, wals.newest_nonce, prev)?
            }
            None => WalWriter::create(&*storage, dir, versions.new_file_number(), (0, 0))?,
        };
        (Memtable::new(), Some(wal))
    };
    for b in &wals.batches {
        mem.insert_batch(b.first_seq, &b.ops);
    }
    let sv = SuperVersion {
        mem: Arc::new(mem),
        imms: Vec::new(),
        version: versions.current(),
    };
    let wal = wal.map(Arc::new);
    let tail = WalTail {
        wal: wal.clone(),
        appended: 0,
    };
    let inner = Inner {
        dir: dir.to_path_buf(),
        storage,
        io,
        opts,
        versions,
        sv: RwLock::new(Arc::new(sv)),
        writer: Mutex::new(Writer {
            wal,
            appended: 0,
            last_seq,
        }),
        wal_tail: Mutex::new(tail),
        commit: GroupCommit::new(0),
        poison: engine_api::Poison::new(),
        visible_seq: AtomicU64::new(last_seq),
        allocated_seq: AtomicU64::new(last_seq),
        snapshots: Arc::new(SnapshotList::default()),
        cache,
        obsolete,
        bg: Mutex::new(Background::default()),
        bg_cv: Condvar::new(),
        compaction_lock: Mutex::new(()),
        counters: Counters::default(),
        compactions,
        report,
        _lock: lock,
    };
    Ok((inner, resumes))
}

/// What steps 2 to 4 read.
struct Loaded {
    replayed: Replayed,
    version: Version,
    wals: WalReplay,
}

/// Steps 2 to 4: the manifest, its tables, the WALs.
fn load(
    storage: &dyn Storage,
    dir: &Path,
    names: &[String],
    opts: &LsmOptions,
    cache: Option<&Arc<BlockCache>>,
) -> Result<Loaded> {
    let replayed = load_manifest(storage, dir, names, opts)?;
    let version = open_tables(storage, dir, &replayed, cache)?;
    let wals = replay_wals(storage, dir, names, &replayed)?;
    Ok(Loaded {
        replayed,
        version,
        wals,
    })
}

/// What the compaction logs at open hold.
struct Logs {
    /// Interrupted jobs to resume.
    jobs: Vec<Job>,
    /// The file names to keep: the logs of those jobs and their finished outputs.
    keep: HashSet<String>,
    /// Logs set aside as void: (file name, why).
    voided: Vec<(String, String)>,
}

/// Step 6a: the compaction logs, newest first. A log without a durable intent belongs to a job
/// that never started; a log whose inputs are all gone belongs to a committed job; a log with
/// some inputs gone belongs to a job planned on a manifest record that was then undone as a
/// torn write: all three are removed with the orphans. A log whose inputs are all live belongs
/// to an interrupted job: its recorded outputs are kept and it is resumed.
///
/// A log is an optimisation (losing one loses no data: its job's inputs are still live), so a
/// log that cannot be trusted is void rather than fatal, reported in
/// [`CompactionManager::voided_logs`], and removed with its outputs: a damaged log, one whose
/// recorded outputs are not on disk at their recorded size, and a stale log sharing an input
/// with a log that holds more of the job (a crash while a resumed job replaced its log can
/// leave both: the complete one of the two holds everything the other does). A log of another
/// format version is void too: a log the previous build left must not refuse the directory.
fn interrupted_jobs(
    storage: &dyn Storage,
    dir: &Path,
    names: &[String],
    versions: &VersionSet,
) -> Result<Logs> {
    let version = versions.current();
    let logs: Vec<u64> = names
        .iter()
        .filter_map(|name| match filename::parse(name)? {
            FileKind::CompactionLog(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut voided = Vec::new();
    let mut read = read_logs(storage, dir, &logs, &mut voided)?;
    // A resumed job's new log and the old one it replaces share their inputs. The new one is a
    // copy plus what the resumed run finished, unless a crash tore the copy: the log holding
    // more finished outputs claims the inputs first, the newer one on a tie.
    read.sort_by(|(a, la), (b, lb)| lb.done.len().cmp(&la.done.len()).then(b.cmp(a)));
    let mut jobs = Vec::new();
    let mut keep = HashSet::new();
    let mut claimed = HashSet::new();
    for (n, logged) in read {
        let path = filename::compaction_log(dir, n);
        let name = filename::compaction_log_name(n);
        let live = logged
            .plan
            .inputs
            .iter()
            .filter(|i| version.find(i.number).is_some())
            .count();
        if live == 0 || live != logged.plan.inputs.len() {
            // Committed, or void (some inputs live and some not: a commit removes all of a
            // job's inputs in one edit, so it never committed; an input is missing because the
            // manifest record that added it was the last record and was undone as a torn
            // write). Its log and outputs are removed with the orphans.
            continue;
        }
        if let Some(why) = distrust(storage, dir, &logged, &claimed) {
            voided.push((name, why));
            continue;
        }
        claimed.extend(logged.plan.inputs.iter().map(|i| i.number));
        keep.extend(logged.done.iter().map(|d| filename::table_name(d.number)));
        keep.insert(name);
        let id = versions.new_file_number();
        jobs.push(resumed(
            logged,
            id,
            &mut || versions.new_file_number(),
            path,
        ));
    }
    Ok(Logs { jobs, keep, voided })
}

/// Why an interrupted job's log cannot be resumed, if it cannot: an input already claimed by a
/// newer log, or a recorded output missing or not of its recorded size.
fn distrust(
    storage: &dyn Storage,
    dir: &Path,
    logged: &LoggedJob,
    claimed: &HashSet<u64>,
) -> Option<String> {
    if let Some(i) = logged
        .plan
        .inputs
        .iter()
        .find(|i| claimed.contains(&i.number))
    {
        return Some(format!(
            "stale: input table {} belongs to a log holding more of its job",
            i.number
        ));
    }
    logged.done.iter().find_map(|d| {
        let len = storage.file_len(&filename::table(dir, d.number)).ok();
        (len != Some(d.size)).then(|| {
            format!(
                "output table {} is not on disk at its recorded size {}",
                d.number, d.size
            )
        })
    })
}

/// Reads every log in `numbers`; a damaged log or one of another format version goes to
/// `voided` with why.
fn read_logs(
    storage: &dyn Storage,
    dir: &Path,
    numbers: &[u64],
    voided: &mut Vec<(String, String)>,
) -> Result<Vec<(u64, LoggedJob)>> {
    let mut read = Vec::new();
    for &n in numbers {
        match read_log(storage, dir, n) {
            Ok(Some(logged)) => read.push((n, logged)),
            Ok(None) => {}
            Err(e @ (Error::Corruption { .. } | Error::InvalidArgument(_))) => {
                voided.push((filename::compaction_log_name(n), e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(read)
}

/// The largest file number in the directory. A name whose number the counter could not have
/// reached is corruption: the counter would wrap and reuse numbers.
pub(crate) fn max_number(dir: &Path, names: &[String]) -> Result<u64> {
    let mut max = 0;
    for name in names {
        let n = match filename::parse(name) {
            Some(
                FileKind::Wal(n)
                | FileKind::Table(n)
                | FileKind::Manifest(n)
                | FileKind::CompactionLog(n),
            ) => n,
            _ => continue,
        };
        if n > filename::MAX_FILE_NUMBER {
            return Err(Error::corruption(
                dir.join(name),
                0,
                "a file number below 2^56",
            ));
        }
        max = max.max(n);
    }
    Ok(max)
}

/// Step 2.
fn load_manifest(
    storage: &dyn Storage,
    dir: &Path,
    names: &[String],
    opts: &LsmOptions,
) -> Result<Replayed> {
    let mut r = Replayed {
        levels: vec![BTreeMap::new(); opts.num_levels],
        log_number: 0,
        next_file: 1,
        last_seq: 0,
        wal_synced: None,
    };
    let Some(number) = read_current(storage, dir)? else {
        let strays = names.iter().any(|n| {
            matches!(
                filename::parse(n),
                Some(FileKind::Wal(_) | FileKind::Table(_))
            )
        });
        if strays {
            return Err(Error::corruption(
                dir.join(filename::CURRENT),
                0,
                "a CURRENT file (tables or WALs exist without one)",
            ));
        }
        if opts.common.read_only {
            return Err(Error::invalid(format!("no engine in {}", dir.display())));
        }
        return Ok(r);
    };
    let path = filename::manifest(dir, number);
    for edit in read_manifest(storage, dir, number)? {
        apply(&mut r, &edit)
            .map_err(|what| Error::corruption(&path, 0, format!("edits that apply: {what}")))?;
    }
    // The WAL the log number names is deleted only once a later edit (and one more record) is
    // durable, so it exists in every image a crash can leave. Missing, it says the manifest lost
    // committed edits (a truncated file): its replay would silently drop data.
    if r.log_number > 0 && !storage.exists(&filename::wal(dir, r.log_number))? {
        return Err(Error::corruption(
            &path,
            0,
            "a manifest whose log number names an existing WAL (committed edits are missing)",
        ));
    }
    Ok(r)
}

fn apply(r: &mut Replayed, edit: &VersionEdit) -> std::result::Result<(), String> {
    r.log_number = r.log_number.max(edit.log_number.unwrap_or(0));
    r.next_file = r.next_file.max(edit.next_file_number.unwrap_or(0));
    r.last_seq = r.last_seq.max(edit.last_sequence.unwrap_or(0));
    r.wal_synced = edit.wal_synced.or(r.wal_synced);
    for &(level, number) in &edit.deleted {
        let removed = r
            .levels
            .get_mut(level as usize)
            .and_then(|l| l.remove(&number));
        if removed.is_none() {
            return Err(format!(
                "table {number} deleted from level {level} where it is not"
            ));
        }
    }
    for (level, meta) in &edit.added {
        if r.levels.iter().any(|l| l.contains_key(&meta.number)) {
            return Err(format!("table {} added twice", meta.number));
        }
        let Some(l) = r.levels.get_mut(*level as usize) else {
            return Err(format!("level {level} beyond num_levels"));
        };
        l.insert(meta.number, meta.clone());
    }
    Ok(())
}

/// Step 3.
fn open_tables(
    storage: &dyn Storage,
    dir: &Path,
    r: &Replayed,
    cache: Option<&Arc<BlockCache>>,
) -> Result<Version> {
    let mut levels = Vec::with_capacity(r.levels.len());
    for level in &r.levels {
        let mut tables = Vec::with_capacity(level.len());
        for meta in level.values() {
            let path = filename::table(dir, meta.number);
            if !storage.exists(&path)? {
                return Err(Error::corruption(&path, 0, "the table the manifest names"));
            }
            let table = Table::open(
                storage,
                &path,
                meta.number,
                IoClass::UserRead,
                cache.cloned(),
            )?;
            if file_meta(&table) != *meta {
                return Err(Error::corruption(
                    &path,
                    0,
                    "a table matching its manifest entry",
                ));
            }
            tables.push(Arc::new(table));
        }
        levels.push(tables);
    }
    Version::from_levels(levels).map_err(|what| {
        Error::corruption(
            dir.join(filename::CURRENT),
            0,
            format!("a valid version: {what}"),
        )
    })
}

/// Step 4.
fn replay_wals(
    storage: &dyn Storage,
    dir: &Path,
    names: &[String],
    replayed: &Replayed,
) -> Result<WalReplay> {
    let log_number = replayed.log_number;
    let claim = replayed.wal_synced.filter(|&(n, _)| n >= log_number);
    let mut numbers: Vec<u64> = names
        .iter()
        .filter_map(|n| match filename::parse(n) {
            Some(FileKind::Wal(n)) if n >= log_number => Some(n),
            _ => None,
        })
        .collect();
    numbers.sort_unstable();
    let mut replay = WalReplay {
        batches: Vec::new(),
        newest: None,
        newest_nonce: None,
        before_newest: None,
    };
    if let Some((n, _)) = claim
        && !numbers.contains(&n)
    {
        return Err(Error::corruption(
            filename::wal(dir, n),
            0,
            "the WAL the manifest records as synced at close",
        ));
    }
    let last = numbers.last().copied();
    let mut prev: Option<(u64, u64)> = None;
    for n in numbers {
        let contents = read_wal(storage, dir, n, Some(n) == last)?;
        check_chain(dir, log_number, prev, n, contents.header, Some(n) == last)?;
        check_synced(dir, claim, n, &contents)?;
        prev = Some((n, contents.valid_len));
        if let Some((offset, bad)) = contents.bad
            && (Some(n) != last || contents.synced_after_bad)
        {
            return Err(Error::corruption(
                filename::wal(dir, n),
                offset,
                bad.describe(),
            ));
        }
        replay.batches.extend(contents.batches);
        replay.before_newest = replay.newest;
        replay.newest = Some((n, contents.valid_len));
        replay.newest_nonce = contents.nonce;
    }
    Ok(replay)
}

/// A WAL whose synced length the manifest records (a clean close wrote it) must hold that many
/// bytes of good records: its end is proven, so a shorter or damaged prefix is corruption, not
/// a torn tail.
fn check_synced(
    dir: &Path,
    claim: Option<(u64, u64)>,
    n: u64,
    contents: &WalContents,
) -> Result<()> {
    match claim {
        Some((number, len)) if number == n && contents.valid_len < len => Err(Error::corruption(
            filename::wal(dir, n),
            contents.valid_len,
            format!("{len} bytes of good records (the length synced at the last clean close)"),
        )),
        _ => Ok(()),
    }
}

/// Each WAL's header names the WAL before it and that WAL's final length: a live predecessor
/// must be there, whole (rotation synced it before this WAL was created). A missing header is
/// allowed only to the newest WAL (a torn tail can take it).
fn check_chain(
    dir: &Path,
    log_number: u64,
    prev: Option<(u64, u64)>,
    n: u64,
    header: Option<(u64, u64)>,
    newest: bool,
) -> Result<()> {
    let corrupt =
        |number: u64, what: &str| Err(Error::corruption(filename::wal(dir, number), 0, what));
    let Some((named, len)) = header else {
        return if newest {
            Ok(())
        } else {
            corrupt(n, "a WAL header")
        };
    };
    if named < log_number || named == 0 {
        return match prev {
            Some((p, _)) => corrupt(p, "no live WAL older than the one its successor follows"),
            None => Ok(()),
        };
    }
    match prev {
        Some((p, valid)) if p == named && valid == len => Ok(()),
        Some((p, _)) if p == named => corrupt(p, "a WAL as long as its successor's header says"),
        _ => corrupt(named, "the WAL its successor's header names"),
    }
}

/// Step 6: removes every file that no committed edit names.
fn remove_orphans(
    storage: &dyn Storage,
    dir: &Path,
    versions: &VersionSet,
    keep: &HashSet<String>,
) -> Result<()> {
    let state = versions.state();
    let manifest = versions.manifest_number();
    let mut removed = false;
    for name in storage.list(dir)? {
        if keep.contains(&name) {
            continue;
        }
        let orphan = match filename::parse(&name) {
            Some(FileKind::Table(n)) => state.current.find(n).is_none(),
            Some(FileKind::Wal(n)) => n < state.log_number,
            Some(FileKind::Manifest(n)) => Some(n) != manifest,
            Some(FileKind::Temp | FileKind::CompactionLog(_)) => true,
            Some(FileKind::Current | FileKind::Lock) | None => false,
        };
        if orphan {
            storage.remove(&dir.join(&name))?;
            removed = true;
        }
    }
    if removed {
        storage.sync_dir(dir)?;
    }
    Ok(())
}
