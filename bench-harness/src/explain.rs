//! I/O per file, for `kv explain put` and `kv explain scan`: a [`Storage`] wrapper that tallies
//! appends, syncs and reads by file name, so the tool can say which log, table or data file
//! each byte went to or came from. (The engines count I/O per class; this adds the file.)

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use bitcask_engine::MergeOptions;
use engine_api::{
    Engine, FileLock, IoClass, KeyRange, LockMode, ReadableFile, Result, Stats, Storage,
    SyncPolicy, WritableFile,
};
use lsm_engine::LsmOptions;

/// The I/O one file saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileIo {
    /// Append calls and the bytes they wrote.
    pub appends: u64,
    /// Bytes appended.
    pub bytes_written: u64,
    /// File syncs.
    pub syncs: u64,
    /// Read calls.
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

impl FileIo {
    /// The I/O since `earlier`.
    pub fn since(&self, earlier: &FileIo) -> FileIo {
        FileIo {
            appends: self.appends - earlier.appends,
            bytes_written: self.bytes_written - earlier.bytes_written,
            syncs: self.syncs - earlier.syncs,
            reads: self.reads - earlier.reads,
            bytes_read: self.bytes_read - earlier.bytes_read,
        }
    }

    /// Whether nothing happened.
    pub fn is_idle(&self) -> bool {
        *self == FileIo::default()
    }
}

type Tally = Arc<Mutex<BTreeMap<String, FileIo>>>;

fn record(tally: &Tally, path: &Path, f: impl FnOnce(&mut FileIo)) {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut map = tally.lock().unwrap_or_else(PoisonError::into_inner);
    f(map.entry(name).or_default());
}

/// A [`Storage`] that tallies I/O per file name and passes everything to the storage it wraps.
#[derive(Debug, Clone)]
pub struct TallyStorage {
    inner: Arc<dyn Storage>,
    tally: Tally,
}

impl TallyStorage {
    /// Wraps `inner` with an empty tally.
    pub fn new(inner: Arc<dyn Storage>) -> TallyStorage {
        TallyStorage {
            inner,
            tally: Tally::default(),
        }
    }

    /// The tally so far, by file name.
    pub fn snapshot(&self) -> BTreeMap<String, FileIo> {
        self.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The I/O per file since `earlier` (files with none left out).
    pub fn since(&self, earlier: &BTreeMap<String, FileIo>) -> BTreeMap<String, FileIo> {
        self.snapshot()
            .into_iter()
            .map(|(name, io)| {
                let before = earlier.get(&name).copied().unwrap_or_default();
                (name, io.since(&before))
            })
            .filter(|(_, io)| !io.is_idle())
            .collect()
    }

    fn writable(&self, file: Box<dyn WritableFile>) -> Box<dyn WritableFile> {
        Box::new(TallyWritable {
            inner: file,
            tally: Arc::clone(&self.tally),
        })
    }
}

impl Storage for TallyStorage {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn create(&self, path: &Path, class: IoClass) -> Result<Box<dyn WritableFile>> {
        Ok(self.writable(self.inner.create(path, class)?))
    }

    fn open_append(&self, path: &Path, class: IoClass) -> Result<Box<dyn WritableFile>> {
        Ok(self.writable(self.inner.open_append(path, class)?))
    }

    fn open(&self, path: &Path, class: IoClass) -> Result<Box<dyn ReadableFile>> {
        Ok(Box::new(TallyReadable {
            inner: self.inner.open(path, class)?,
            tally: Arc::clone(&self.tally),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        self.inner.exists(path)
    }

    fn file_len(&self, path: &Path) -> Result<u64> {
        self.inner.file_len(path)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.inner.sync_dir(dir)
    }

    fn lock(&self, path: &Path, mode: LockMode) -> Result<Box<dyn FileLock>> {
        self.inner.lock(path, mode)
    }
}

struct TallyWritable {
    inner: Box<dyn WritableFile>,
    tally: Tally,
}

impl WritableFile for TallyWritable {
    fn append(&self, data: &[u8]) -> Result<()> {
        self.inner.append(data)?;
        record(&self.tally, self.inner.path(), |io| {
            io.appends += 1;
            io.bytes_written += data.len() as u64;
        });
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.inner.sync()?;
        record(&self.tally, self.inner.path(), |io| io.syncs += 1);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn truncate(&self, len: u64) -> Result<()> {
        self.inner.truncate(len)
    }

    fn preallocate(&self, upto: u64) -> Result<()> {
        self.inner.preallocate(upto)
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}

struct TallyReadable {
    inner: Box<dyn ReadableFile>,
    tally: Tally,
}

impl ReadableFile for TallyReadable {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.inner.read_exact_at(buf, offset)?;
        record(&self.tally, self.inner.path(), |io| {
            io.reads += 1;
            io.bytes_read += buf.len() as u64;
        });
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        self.inner.len()
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}

/// How `kv` reports bytes: text escaped.
fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

fn io_text(io: &FileIo) -> String {
    if io.reads == 0 {
        "no I/O".to_string()
    } else {
        format!("{} read(s), {} bytes", io.reads, io.bytes_read)
    }
}

fn sync_text(sync: SyncPolicy, syncs: u64, files: &[&str]) -> String {
    match sync {
        SyncPolicy::Always => format!(
            "sync: waited for {syncs} fsync(s) of {} (policy always: the put returns once its record is durable)",
            files.join(", ")
        ),
        SyncPolicy::Never => {
            "sync: none (policy never: durable once the OS writes the page back)".to_string()
        }
        other => format!(
            "sync: {syncs} on the write path (policy {other:?}: a background sync makes it durable)"
        ),
    }
}

/// Writes `key = value` to `engine` and explains what the write cost and what it will cost
/// again, as the engine's policy (with default options, as `kv` opens it) expects.
///
/// # Errors
/// The put's error, as text.
pub fn put(
    engine: &dyn Engine,
    tally: &TallyStorage,
    sync: SyncPolicy,
    key: &[u8],
    value: &[u8],
) -> std::result::Result<Vec<String>, String> {
    let before = tally.snapshot();
    engine.put(key, value).map_err(|e| e.to_string())?;
    let io = tally.since(&before);
    let lsm = engine.name() == "lsm";
    // The Bitcask's active file may still carry the `.tmp` name it was created under.
    let is_log = |n: &str| {
        if lsm {
            n.ends_with(".log")
        } else {
            n.contains(".data")
        }
    };
    let (log, other): (Vec<_>, Vec<_>) = io.iter().partition(|(n, _)| is_log(n));
    let mut out = vec![format!(
        "put {} ({} bytes) = {} bytes on {}:",
        show(key),
        key.len(),
        value.len(),
        engine.name()
    )];
    let what = if lsm { "WAL" } else { "log" };
    for (name, f) in &log {
        // The Bitcask creates its active file as `<id>.data.tmp`.
        let name = match name.strip_suffix(".tmp") {
            Some(data) => format!("{data} (the active file, created as {name})"),
            None => (*name).clone(),
        };
        out.push(format!(
            "  1. {what}: appended {} bytes to {name} in {} append(s): key {} + value {} + {} of framing (header, checksum{})",
            f.bytes_written,
            f.appends,
            key.len(),
            value.len(),
            f.bytes_written.saturating_sub((key.len() + value.len()) as u64),
            if lsm { ", batch header" } else { ", sequence number" }
        ));
    }
    let names: Vec<&str> = log
        .iter()
        .map(|(n, _)| n.strip_suffix(".tmp").unwrap_or(n))
        .collect();
    let syncs = log.iter().map(|(_, f)| f.syncs).sum();
    out.push(format!("  2. {}", sync_text(sync, syncs, &names)));
    out.push(if lsm {
        "  3. memtable: the entry (key + 8-byte sequence and kind + value) inserted [in memory, no I/O]".to_string()
    } else {
        "  3. keydir: the key now points at the new record [in memory, no I/O]".to_string()
    });
    for (name, f) in &other {
        out.push(format!(
            "     also: {name}: {} bytes appended, {} sync(s) (a rotation, flush or manifest edit this put triggered)",
            f.bytes_written, f.syncs
        ));
    }
    let record = (key.len() + value.len()) as u64;
    out.extend(if lsm {
        later_lsm(&engine.stats(), key.len() as u64, value.len() as u64)
    } else {
        later_bitcask(key.len() as u64, record)
    });
    let written: u64 = io.values().map(|f| f.bytes_written).sum();
    let synced: u64 = io.values().map(|f| f.syncs).sum();
    out.push(format!(
        "total now: {written} bytes written, {synced} sync(s)"
    ));
    Ok(out)
}

/// What the merge policy will make a Bitcask record cost again.
fn later_bitcask(key: u64, record: u64) -> Vec<String> {
    let m = MergeOptions::default();
    let f = m.frag_trigger.clamp(0.05, 1.0);
    let again = (1.0 - f) / f;
    #[expect(clippy::cast_precision_loss, reason = "record sizes")]
    let bytes = again * (record + 23) as f64;
    vec![
        "later, as the merge policy expects:".to_string(),
        format!(
            "  - the record stays where it is while live; overwritten or deleted, it is dead bytes. A file is merged once {:.0} % of it is dead (or {} dead bytes); files {:.0} % dead join",
            f * 100.0,
            m.dead_bytes_trigger,
            m.frag_threshold * 100.0
        ),
        format!(
            "  - a merge copies every record still live, and writes a {}-byte hint entry for it",
            19 + key
        ),
        format!(
            "  - under steady overwrites a merged file is about {:.0} % dead, so each byte written is copied (1 - f) / f = {again:.2} times more: about {bytes:.0} bytes for this record (`bench-harness simulate --sweep bitcask.fragmentation` measures it)",
            f * 100.0
        ),
    ]
}

/// What flush and leveled compaction will make an LSM entry cost again, from the tree's shape.
fn later_lsm(stats: &Stats, key: u64, value: u64) -> Vec<String> {
    let o = LsmOptions::default();
    let last = stats.levels.len().saturating_sub(1);
    let base = stats
        .levels
        .iter()
        .skip(1)
        .position(|l| l.target_bytes > 0)
        .map_or(last, |p| p + 1);
    let deeper = last.saturating_sub(base);
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let per_level = (o.level_size_multiplier as f64 + 1.0) / 2.0;
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let rewrites = 2.0 + deeper as f64 * per_level;
    let entry = 3 + key + 8 + value;
    #[expect(clippy::cast_precision_loss, reason = "record sizes")]
    let bytes = rewrites * entry as f64;
    vec![
        "later, as the flush and compaction policy expect:".to_string(),
        format!(
            "  - flush: written again into an L0 table when the memtable fills ({} bytes): about {entry} bytes",
            o.memtable_bytes
        ),
        format!(
            "  - compaction L0 -> L{base}: rewritten once when {} L0 tables have gathered",
            o.l0_compaction_trigger
        ),
        if deeper == 0 {
            format!(
                "  - L{base} is the last level: no deeper level rewrites it yet (each one the data grows by multiplier {} adds about (multiplier + 1) / 2 = {per_level:.1} rewrites)",
                o.level_size_multiplier
            )
        } else {
            format!(
                "  - then {deeper} level(s) below L{base} down to L{last}: each rewrites it about (multiplier + 1) / 2 = {per_level:.1} times (the overlap it meets in the next level, multiplier {})",
                o.level_size_multiplier
            )
        },
        format!(
            "  - in all about {rewrites:.1} more writes, {bytes:.0} bytes for this entry (`bench-harness simulate --sweep lsm.multiplier` measures it)"
        ),
    ]
}

/// Scans `[from, to)` of `engine` and explains the sources the scan merged and the I/O each did.
///
/// # Errors
/// The scan's error, as text.
pub fn scan(
    engine: &dyn Engine,
    tally: &TallyStorage,
    dir: &Path,
    from: Option<Vec<u8>>,
    to: Option<Vec<u8>>,
) -> std::result::Result<Vec<String>, String> {
    let stats = engine.stats();
    let bound = |b: &Option<Vec<u8>>| b.as_deref().map_or("-".to_string(), show);
    let mut out = vec![format!(
        "scan [{}, {}) on {}:",
        bound(&from),
        bound(&to),
        engine.name()
    )];
    let in_range = |lo: &[u8], hi: &[u8]| {
        from.as_deref().is_none_or(|f| hi >= f) && to.as_deref().is_none_or(|t| lo < t)
    };
    let range = KeyRange {
        start: from.clone().map_or(Bound::Unbounded, Bound::Included),
        end: to.clone().map_or(Bound::Unbounded, Bound::Excluded),
    };
    let before = tally.snapshot();
    let mut pairs = 0u64;
    for pair in engine.scan(range).map_err(|e| e.to_string())? {
        pair.map_err(|e| e.to_string())?;
        pairs += 1;
    }
    let io = tally.since(&before);
    let sources = if engine.name() == "lsm" {
        lsm_sources(&stats, &io, dir, in_range, &mut out)
    } else {
        bitcask_sources(&stats, &io, pairs, &mut out)
    };
    out.push(format!("=> {pairs} pair(s) from {sources} source(s)"));
    let reads: u64 = io.values().map(|f| f.reads).sum();
    let bytes: u64 = io.values().map(|f| f.bytes_read).sum();
    out.push(format!("total: {reads} storage read(s), {bytes} bytes"));
    Ok(out)
}

fn bitcask_sources(
    stats: &Stats,
    io: &BTreeMap<String, FileIo>,
    pairs: u64,
    out: &mut Vec<String>,
) -> usize {
    out.push(format!(
        "  1. keydir walk: all {} live keys examined under read locks (a hash index has no order), {pairs} in range copied and sorted [no I/O]",
        stats.live_keys
    ));
    out.push(
        "  2. values: one positional read per pair, from the data file the keydir names:"
            .to_string(),
    );
    for (name, f) in io {
        out.push(format!("     {name}: {}", io_text(f)));
    }
    1
}

fn lsm_sources(
    stats: &Stats,
    io: &BTreeMap<String, FileIo>,
    dir: &Path,
    in_range: impl Fn(&[u8], &[u8]) -> bool,
    out: &mut Vec<String>,
) -> usize {
    let wals: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    out.push(format!(
        "  1. memtables: the active one (and any sealed), rebuilt at open from WAL {} [in memory, no I/O]",
        if wals.is_empty() { "-".to_string() } else { wals.join(", ") }
    ));
    let mut sources = 1;
    let mut step = 2;
    let none = FileIo::default();
    for level in &stats.levels {
        let tables: Vec<_> = stats
            .files
            .iter()
            .filter(|f| f.level == Some(level.level))
            .filter(|f| match (&f.smallest_key, &f.largest_key) {
                (Some(lo), Some(hi)) => in_range(lo, hi),
                _ => false,
            })
            .collect();
        let skipped = level.files as usize - tables.len();
        if level.level == 0 {
            for t in &tables {
                let f = io.get(&t.name).unwrap_or(&none);
                out.push(format!(
                    "  {step}. L0 table {} (its own iterator: L0 tables overlap): {}",
                    t.name,
                    io_text(f)
                ));
                step += 1;
                sources += 1;
            }
            if skipped > 0 {
                out.push(format!(
                    "     ({skipped} L0 table(s) outside the range skipped)"
                ));
            }
        } else if !tables.is_empty() {
            out.push(format!(
                "  {step}. L{}: one iterator over {} table(s) in range ({} outside skipped): tables of a level do not overlap, so one at a time",
                level.level,
                tables.len(),
                skipped
            ));
            for t in &tables {
                let f = io.get(&t.name).unwrap_or(&none);
                out.push(format!("     {}: {}", t.name, io_text(f)));
            }
            step += 1;
            sources += 1;
        }
    }
    sources
}
