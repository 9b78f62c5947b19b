//! Damaged files: flip, zero or truncate bytes at many offsets of every file an engine leaves,
//! then open and read.
//!
//! A workload is written, synced and shut down cleanly on a [`SimStorage`]; the result is kept
//! as a pristine image. For every file, at offsets spread over it (all of them for small
//! files), each kind of [`Damage`] is applied to a fresh copy of the image, and the engine is
//! opened on it (inside `catch_unwind`: a panic is a failure, not a crash of the test). Then:
//! - open fails with [`Error::Corruption`] naming the damaged file: accepted;
//! - open fails any other way: a failure;
//! - open succeeds: every key is read with `get`, and the whole engine with `scan`. A read may
//!   fail with [`Error::Corruption`] (the check cannot tell which keys a damage touched), but
//!   every value returned, and every key reported absent, must agree with the state the workload
//!   left. Never a wrong value, never silently lost data.
//!
//! **The one allowance: a torn tail.** Damage to the last bytes of the active log, the file
//! that every write at the end of the workload appended to, looks exactly like a write torn by
//! a crash, and the contract tells engines to drop such a tail (reliability rule R5). So when
//! the damage reaches the last write's bytes of that log (or truncates it anywhere), the engine
//! may also hold the state after a shorter prefix of the writes: dropping the damaged record
//! and everything after it. Damage followed by intact records of the log, or damage to any
//! other file, gets no allowance: it must be reported as corruption.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::EngineFactory;
use super::conformance::{Contents, DIR};
use super::rng::Rng;
use crate::{CrashMode, Engine, Error, KeyRange, SimStorage, Storage, SyncPolicy, WriteBatch};

/// A way to damage a file at an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Flip one bit of the byte at the offset.
    Flip,
    /// Zero [`DamageConfig::zero_len`] bytes from the offset (skipped if they are all zero).
    Zero,
    /// Cut the file at the offset.
    Truncate,
}

/// How [`check`] runs.
#[derive(Clone, Debug)]
pub struct DamageConfig {
    /// The sync policy of the workload and of every open.
    pub policy: SyncPolicy,
    /// Offsets tried per file (every offset of smaller files).
    pub offsets_per_file: usize,
    /// Bytes zeroed by [`Damage::Zero`].
    pub zero_len: usize,
    /// Writes in the workload.
    pub writes: u32,
    /// Most failures described in the error (all are counted).
    pub max_reported: usize,
    /// Give damage to the active log's tail the torn-tail allowance (see the module
    /// documentation). An engine whose clean shutdown makes its log's end provable (the LSM
    /// records the newest WAL's synced length in its manifest) is checked without it: after a
    /// clean close, every damage keeps the final state or is reported. Default true.
    pub torn_tail_allowance: bool,
}

impl Default for DamageConfig {
    fn default() -> Self {
        DamageConfig {
            policy: SyncPolicy::Always,
            offsets_per_file: 48,
            zero_len: 8,
            writes: 150,
            max_reported: 12,
            torn_tail_allowance: true,
        }
    }
}

/// What [`check`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DamageReport {
    /// Files in the pristine image that were damaged.
    pub files: u64,
    /// Damaged images opened.
    pub cases: u64,
    /// Opens that succeeded (and whose reads were checked).
    pub opened: u64,
    /// Opens refused with a corruption error naming the damaged file.
    pub refused: u64,
    /// Reads that returned a corruption error.
    pub corrupt_reads: u64,
    /// Cases given the torn-tail allowance.
    pub torn_tail_cases: u64,
    /// File names (without directory) damaged, with their lengths.
    pub file_names: Vec<(String, u64)>,
}

impl fmt::Display for DamageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .file_names
            .iter()
            .map(|(n, l)| format!("{n} ({l} B)"))
            .collect();
        write!(
            f,
            "damage: {} damaged images of {} files [{}]: {} opened and read ({} corrupt reads), \
             {} refused with a corruption error naming the file, {} torn-tail allowances",
            self.cases,
            self.files,
            names.join(", "),
            self.opened,
            self.corrupt_reads,
            self.refused,
            self.torn_tail_cases
        )
    }
}

/// Writes the workload, then damages every file at many offsets and checks each open.
///
/// # Errors
/// The first [`DamageConfig::max_reported`] failures (file, damage, offset, what went wrong)
/// and their total count.
pub fn check(factory: &dyn EngineFactory, config: &DamageConfig) -> Result<DamageReport, String> {
    let (pristine, history) = write_workload(factory, config)?;
    let mut report = DamageReport::default();
    let mut failures = Vec::new();
    for path in pristine.all_files() {
        let original = pristine.read_file(&path).unwrap_or_default();
        if original.is_empty() {
            continue;
        }
        report.files += 1;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        report.file_names.push((name, original.len() as u64));
        for offset in offsets(original.len(), config.offsets_per_file) {
            for damage in [Damage::Flip, Damage::Zero, Damage::Truncate] {
                let Some((bytes, end)) = damaged(&original, damage, offset, config.zero_len) else {
                    continue;
                };
                let case = Case {
                    path: &path,
                    damage,
                    offset,
                    end,
                };
                let lowest = if config.torn_tail_allowance {
                    history.lowest_prefix(&case, original.len() as u64)
                } else {
                    history.states.len() - 1
                };
                report.torn_tail_cases += u64::from(lowest < history.states.len() - 1);
                report.cases += 1;
                if let Err(e) = check_case(
                    factory,
                    config,
                    &pristine,
                    &case,
                    bytes,
                    &history,
                    lowest,
                    &mut report,
                ) {
                    failures.push(format!(
                        "{} ({}) {damage:?} at offset {offset}: {e}",
                        path.display(),
                        history.describe(&path, original.len() as u64)
                    ));
                }
            }
        }
    }
    if failures.is_empty() {
        return Ok(report);
    }
    let shown: Vec<&String> = failures.iter().take(config.max_reported).collect();
    Err(format!(
        "{} of {} damaged images mishandled; the first:\n{}",
        failures.len(),
        report.cases,
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// One damaged image: which file, how, and the damaged byte range `[offset, end)`.
struct Case<'a> {
    path: &'a Path,
    damage: Damage,
    offset: usize,
    end: usize,
}

/// Offsets spread over a file, plus its first and last bytes.
fn offsets(len: usize, per_file: usize) -> BTreeSet<usize> {
    if len <= per_file {
        return (0..len).collect();
    }
    let mut set: BTreeSet<usize> = (0..per_file).map(|i| i * len / per_file).collect();
    set.extend([1, len / 2 + 1, len.saturating_sub(8), len - 1]);
    set
}

/// The damaged bytes and the end of the damaged range, or `None` if the damage changes nothing.
fn damaged(
    original: &[u8],
    damage: Damage,
    offset: usize,
    zero_len: usize,
) -> Option<(Vec<u8>, usize)> {
    let mut bytes = original.to_vec();
    match damage {
        Damage::Flip => {
            bytes[offset] ^= 1 << (offset % 8);
            Some((bytes, offset + 1))
        }
        Damage::Zero => {
            let end = (offset + zero_len).min(bytes.len());
            let run = &mut bytes[offset..end];
            if run.iter().all(|&b| b == 0) {
                return None;
            }
            run.fill(0);
            Some((bytes, end))
        }
        Damage::Truncate => {
            bytes.truncate(offset);
            Some((bytes, original.len()))
        }
    }
}

/// File lengths, by path.
type Lens = BTreeMap<PathBuf, u64>;

/// What the workload did: the state after each prefix of its writes, and every file's length
/// just before and just after each write (compactions run between writes).
struct History {
    /// `states[p]`: the contents after the first `p` writes.
    states: Vec<Contents>,
    /// `before[i]`, `after[i]`: file lengths around write `i + 1`.
    before: Vec<Lens>,
    after: Vec<Lens>,
    keys: BTreeSet<Vec<u8>>,
}

impl History {
    fn len_of(lens: &Lens, path: &Path) -> Option<u64> {
        lens.get(path).copied()
    }

    /// The first write of the run of writes at the end of the workload that all appended to
    /// `path`, if the last write did.
    fn tail_run(&self, path: &Path) -> Option<usize> {
        let n = self.before.len();
        let len = |lens: &Lens| Self::len_of(lens, path);
        let grew = |i: usize| len(&self.after[i]).unwrap_or(0) > len(&self.before[i]).unwrap_or(0);
        if n == 0 || !grew(n - 1) {
            return None;
        }
        let mut first = n - 1;
        while first > 0
            && grew(first - 1)
            && len(&self.after[first - 1]) == len(&self.before[first])
        {
            first -= 1;
        }
        Some(first)
    }

    /// The file's part in the workload, for failure messages.
    fn describe(&self, path: &Path, final_len: u64) -> String {
        let n = self.before.len();
        let written = (0..n)
            .filter(|&i| {
                Self::len_of(&self.after[i], path).unwrap_or(0)
                    > Self::len_of(&self.before[i], path).unwrap_or(0)
            })
            .count();
        let end = n
            .checked_sub(1)
            .and_then(|last| Self::len_of(&self.after[last], path));
        let tail = self
            .tail_run(path)
            .map_or("none".to_string(), |f| format!("writes {}..={n}", f + 1));
        format!(
            "{final_len} B; {written} of {n} writes appended to it; {} B after the last write; \
             tail run {tail}",
            end.map_or("absent".to_string(), |e| e.to_string())
        )
    }

    /// The lowest prefix of writes the damaged engine may hold (`states.len() - 1` when only
    /// the final state is legal).
    fn lowest_prefix(&self, case: &Case<'_>, final_len: u64) -> usize {
        let n = self.before.len();
        let Some(first) = self.tail_run(case.path) else {
            return n;
        };
        let start_of = |i: usize| Self::len_of(&self.before[i], case.path).unwrap_or(0);
        let end_of_writes = Self::len_of(&self.after[n - 1], case.path).unwrap_or(0);
        let offset = case.offset as u64;
        let torn = match case.damage {
            // A cut leaves nothing after it, whatever the shutdown appended (a seal, say):
            // the file ends as if the power had gone while the writes were landing.
            Damage::Truncate => offset < end_of_writes,
            // Bytes the shutdown appended after the damage are intact evidence that it is not
            // a torn tail; without them, damage to the last write's bytes may be one.
            Damage::Flip | Damage::Zero => {
                final_len == end_of_writes && case.end as u64 > start_of(n - 1)
            }
        };
        if !torn {
            return n;
        }
        if offset < start_of(first) {
            // A cut into bytes older than the run (written by a compaction, say): all a
            // torn-tail reading can promise is some prefix.
            return if case.damage == Damage::Truncate {
                0
            } else {
                n
            };
        }
        // Write `i + 1` covers the offset, so the state before it is the lowest legal one.
        (first..n)
            .rev()
            .find(|&i| start_of(i) <= offset)
            .unwrap_or(first)
    }
}

fn open(
    f: &dyn EngineFactory,
    sim: &SimStorage,
    policy: SyncPolicy,
) -> crate::Result<Box<dyn Engine>> {
    f.open(Arc::new(sim.clone()), Path::new(DIR), policy)
}

fn lens(sim: &SimStorage) -> Lens {
    sim.all_files()
        .into_iter()
        .map(|p| {
            let len = sim.file_len(&p).unwrap_or(0);
            (p, len)
        })
        .collect()
}

fn write_workload(
    f: &dyn EngineFactory,
    config: &DamageConfig,
) -> Result<(SimStorage, History), String> {
    let sim = SimStorage::new();
    let engine = open(f, &sim, config.policy).map_err(|e| format!("open: {e}"))?;
    let mut history = History {
        states: vec![Contents::new()],
        before: Vec::new(),
        after: Vec::new(),
        keys: BTreeSet::new(),
    };
    let mut model = Contents::new();
    let mut rng = Rng::new(0x00da_3a6e);
    for i in 0..config.writes {
        if i > 0 && i % 50 == 0 {
            engine.compact().map_err(|e| format!("compact: {e}"))?;
        }
        history.before.push(lens(&sim));
        let batch = random_write(&mut rng, i);
        engine
            .write(&batch)
            .map_err(|e| format!("write {i}: {e}"))?;
        for op in batch.ops() {
            history.keys.insert(op.key().to_vec());
            match op.value() {
                Some(v) => model.insert(op.key().to_vec(), v.to_vec()),
                None => model.remove(op.key()),
            };
        }
        history.after.push(lens(&sim));
        history.states.push(model.clone());
    }
    engine.sync().map_err(|e| format!("sync: {e}"))?;
    drop(engine);
    Ok((sim.crash(CrashMode::KeepAll, 0), history))
}

/// A put (most often), a delete, or a small batch, over 40 keys; values up to 2 KiB, each
/// naming its write so no two writes store the same bytes.
fn random_write(rng: &mut Rng, i: u32) -> WriteBatch {
    let mut batch = WriteBatch::new();
    let ops = if rng.percent(15) { 2 + rng.below(3) } else { 1 };
    for j in 0..ops {
        let key = format!("dmg{:02}", rng.below(40));
        if rng.percent(15) {
            batch.delete(key.as_bytes());
        } else {
            let len = if rng.percent(10) {
                2000
            } else {
                usize::try_from(rng.below(200)).unwrap_or(0)
            };
            let mut value = format!("w{i}.{j}:").into_bytes();
            value.extend(super::rng::filler(u64::from(i) << 8 | j, len));
            batch.put(key.as_bytes(), &value);
        }
    }
    batch
}

/// What a read said about a key: a value, absent, or a corruption error.
type Answer = Option<Option<Vec<u8>>>;

#[expect(
    clippy::too_many_arguments,
    reason = "one case of the sweep and its context"
)]
fn check_case(
    f: &dyn EngineFactory,
    config: &DamageConfig,
    pristine: &SimStorage,
    case: &Case<'_>,
    bytes: Vec<u8>,
    history: &History,
    lowest: usize,
    report: &mut DamageReport,
) -> Result<(), String> {
    let image = pristine.crash(CrashMode::KeepAll, 0);
    image.overwrite_file(case.path, bytes);
    let outcome = catch_unwind(AssertUnwindSafe(
        || -> Result<Option<BTreeMap<Vec<u8>, Answer>>, String> {
            let engine = match open(f, &image, config.policy) {
                Ok(engine) => engine,
                Err(Error::Corruption { path, .. }) if path == case.path => return Ok(None),
                Err(e) => {
                    return Err(format!(
                        "open failed without a corruption error naming the file: {e}"
                    ));
                }
            };
            read_everything(&*engine, &history.keys).map(Some)
        },
    ));
    let answers = match outcome {
        Err(panic) => return Err(format!("panicked: {}", panic_message(&*panic))),
        Ok(result) => result?,
    };
    let Some(answers) = answers else {
        report.refused += 1;
        return Ok(());
    };
    report.opened += 1;
    report.corrupt_reads += answers.values().filter(|a| a.is_none()).count() as u64;
    let fits = |p: usize| {
        answers.iter().all(|(k, a)| match a {
            None => true,
            Some(v) => history.states[p].get(k) == v.as_ref(),
        })
    };
    if (lowest..history.states.len()).any(fits) {
        return Ok(());
    }
    let last = &history.states[history.states.len() - 1];
    let wrong: Vec<String> = answers
        .iter()
        .filter(|(k, a)| matches!(a, Some(v) if last.get(*k) != v.as_ref()))
        .map(|(k, a)| format!("{} -> {}", String::from_utf8_lossy(k), describe(a)))
        .take(5)
        .collect();
    Err(format!(
        "opened and served wrong data (allowed prefixes {lowest}..={}): {}",
        history.states.len() - 1,
        wrong.join(", ")
    ))
}

fn describe(answer: &Answer) -> String {
    match answer {
        None => "corruption".to_string(),
        Some(None) => "absent".to_string(),
        Some(Some(v)) => {
            let head: Vec<u8> = v
                .iter()
                .copied()
                .take_while(|&b| b != b':')
                .take(16)
                .collect();
            format!("value of {}", String::from_utf8_lossy(&head))
        }
    }
}

/// Gets every key, then scans; a scan that ends in an error says nothing about the keys it
/// did not reach. Errors other than corruption are returned.
fn read_everything(
    engine: &dyn Engine,
    keys: &BTreeSet<Vec<u8>>,
) -> Result<BTreeMap<Vec<u8>, Answer>, String> {
    let mut answers = BTreeMap::new();
    for k in keys {
        let answer = match engine.get(k) {
            Ok(v) => Some(v.map(|v| v.to_vec())),
            Err(e) if e.is_corruption() => None,
            Err(e) => return Err(format!("get {}: {e}", String::from_utf8_lossy(k))),
        };
        answers.insert(k.clone(), answer);
    }
    let scan = match engine.scan(KeyRange::all()) {
        Ok(scan) => scan,
        Err(e) if e.is_corruption() => return Ok(answers),
        Err(e) => return Err(format!("scan: {e}")),
    };
    let mut seen = BTreeSet::new();
    for item in scan {
        match item {
            Ok((k, v)) => {
                seen.insert(k.to_vec());
                let answer = answers.entry(k.to_vec()).or_insert(None);
                match answer {
                    Some(Some(got)) if got.as_slice() != v.as_ref() => {
                        return Err(format!(
                            "get and scan disagree on {}",
                            String::from_utf8_lossy(&k)
                        ));
                    }
                    _ => *answer = Some(Some(v.to_vec())),
                }
            }
            Err(e) if e.is_corruption() => return Ok(answers),
            Err(e) => return Err(format!("scan item: {e}")),
        }
    }
    for (k, answer) in &mut answers {
        if !seen.contains(k) {
            if let Some(Some(_)) = answer {
                return Err(format!(
                    "get found {} but a full scan did not",
                    String::from_utf8_lossy(k)
                ));
            }
            if answer.is_none() {
                continue;
            }
            *answer = Some(None);
        }
    }
    Ok(answers)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "a panic without a message".to_string())
}
