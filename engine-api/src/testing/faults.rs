//! Fault sweeps: an I/O error at the Nth call of each kind, once or for good, a full disk, and
//! faults during recovery, each followed by a crash and a reopen.
//!
//! For every kind of storage call in [`FaultConfig::ops`], a dry run counts the calls a short
//! workload makes; then for each N (all of them, or an even sample) a fresh run arms
//! [`SimStorage::inject_fault`] to fail the Nth call, once or sticky, and checks:
//! - **a clear error**: the first error a caller sees is [`Error::Io`] carrying the injected
//!   cause, or [`Error::Poisoned`] naming it; never a corruption or an invalid argument;
//! - **poisoning**: after a failed sync, the next write is refused with [`Error::Poisoned`],
//!   and `sync()` fails even when the failed sync was a background job's;
//! - **reads go on**: after the error, every key reads as some legal state says (skipped while
//!   a sticky read or open fault makes reads fail on purpose);
//! - **nothing acknowledged is lost**: after the engine is dropped, a crash in each of
//!   [`FaultConfig::crash_modes`] and a reopen (with no fault) leave a legal state;
//! - **reopening recovers**: the reopened engine takes a write.
//!
//! A call that failed may or may not have taken effect, so the oracle is a set of candidate
//! states: an acknowledged write applies to every candidate, a failed one doubles the set
//! (with and without it), a read must agree with some candidate. A write refused with
//! `Poisoned` once an earlier call has failed is taken as not applied (a refusal); the first
//! failed call is always uncertain. After a once-only fault the workload goes on (an engine
//! must keep working, or refuse cleanly, after a transient error); after a sticky one it stops.
//!
//! The disk-full sweep does the same with [`SimStorage::set_capacity`] at budgets spread over
//! the workload's growth. The recovery sweep writes the workload, shuts down cleanly, then
//! fails the Nth call of each kind during `open`: open must fail clearly or serve everything,
//! and a later open without the fault (after a restart, or after a power loss) must serve
//! everything: a failed recovery must never destroy data.
//!
//! Under a buffered policy only [`CrashMode::KeepAll`] is checked (a power loss may then
//! legally lose a suffix, which this oracle does not model; the crash-point and model tests
//! cover that).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::EngineFactory;
use super::conformance::{Contents, DIR};
use super::model::{Step, apply, batch, key};
use crate::{CrashMode, Engine, Error, FaultOp, KeyRange, SimStorage, Storage, SyncPolicy};

/// Every kind of storage call a fault can be injected into.
pub const ALL_OPS: [FaultOp; 9] = [
    FaultOp::Create,
    FaultOp::Open,
    FaultOp::Append,
    FaultOp::Read,
    FaultOp::Sync,
    FaultOp::SyncDir,
    FaultOp::Rename,
    FaultOp::Remove,
    FaultOp::Truncate,
];

/// How the sweeps run.
#[derive(Clone, Debug)]
pub struct FaultConfig {
    /// The sync policy the engine is opened with.
    pub policy: SyncPolicy,
    /// The kinds of call to fail.
    pub ops: Vec<FaultOp>,
    /// Most injection points per kind and stickiness (an even sample when there are more).
    pub max_points: u64,
    /// Disk budgets tried by the disk-full sweep.
    pub capacity_points: u64,
    /// Crash modes checked after each run (only `KeepAll` under a buffered policy).
    pub crash_modes: Vec<CrashMode>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            policy: SyncPolicy::Always,
            ops: ALL_OPS.to_vec(),
            max_points: 40,
            capacity_points: 24,
            crash_modes: vec![
                CrashMode::KeepAll,
                CrashMode::DropUnsynced,
                CrashMode::GarbleTail,
            ],
        }
    }
}

/// What the sweeps did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultReport {
    /// Runs with a fault armed (workload and recovery sweeps).
    pub runs: u64,
    /// Runs in which the armed fault fired.
    pub faults_injected: u64,
    /// Runs in which a caller saw the error.
    pub caller_errors: u64,
    /// Runs that checked poisoning after a failed sync or directory sync.
    pub poison_checks: u64,
    /// Disk-full runs in which a caller saw the disk-full error.
    pub disk_full: u64,
    /// Faults that fired during `open`.
    pub recovery_faults: u64,
    /// Reopens checked after a fault (each crash mode counts once).
    pub reopens_checked: u64,
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "faults: {} runs, {} faults injected ({} during open), {} seen by the caller, \
             {} poison checks, {} disk-full runs, {} reopens checked",
            self.runs,
            self.faults_injected + self.disk_full,
            self.recovery_faults,
            self.caller_errors,
            self.poison_checks,
            self.disk_full,
            self.reopens_checked
        )
    }
}

/// Runs the workload, disk-full and recovery sweeps.
///
/// # Errors
/// The first violation, naming the fault kind, N, stickiness and what went wrong.
pub fn sweep(factory: &dyn EngineFactory, config: &FaultConfig) -> Result<FaultReport, String> {
    let steps = workload();
    let mut report = FaultReport::default();
    for &op in &config.ops {
        for sticky in [false, true] {
            let calls = dry_run(factory, config, &steps, op)?;
            for n in points(calls, config.max_points) {
                let fault = Fault::Call { op, n, sticky };
                run_one(factory, config, &steps, fault, &mut report)
                    .map_err(|e| format!("{fault}: {e}"))?;
            }
        }
    }
    let (base, peak) = growth(factory, config, &steps)?;
    for i in 0..config.capacity_points {
        let cap = base + (peak - base) * i / config.capacity_points.max(1);
        let fault = Fault::Capacity(cap);
        run_one(factory, config, &steps, fault, &mut report)
            .map_err(|e| format!("{fault}: {e}"))?;
    }
    recovery_sweep(factory, config, &steps, &mut report)?;
    Ok(report)
}

/// A short deterministic workload: puts of mixed sizes, deletes, batches, reads, a sync and
/// two compactions.
pub fn workload() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rng = super::rng::Rng::new(0xfa17);
    for i in 0..44u8 {
        let k = 2 + u8::try_from(rng.below(12)).unwrap_or(0);
        let len = if i % 9 == 4 {
            1500
        } else {
            usize::try_from(rng.below(80)).unwrap_or(0)
        };
        let value = vec![i; len];
        steps.push(match rng.below(10) {
            0..=4 => Step::Put(k, value),
            5 => Step::Delete(k),
            6 | 7 => Step::Get(k),
            _ => Step::Batch(vec![(k, Some(value)), (2 + (k + 5) % 12, None)]),
        });
        match i {
            14 => steps.push(Step::Sync),
            20 | 34 => steps.push(Step::Compact),
            _ => {}
        }
    }
    steps
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Call { op: FaultOp, n: u64, sticky: bool },
    Capacity(u64),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Call { op, n, sticky } => {
                let how = if *sticky { "sticky" } else { "once" };
                write!(f, "{op:?} fault at call {n} ({how})")
            }
            Fault::Capacity(cap) => write!(f, "disk full at {cap} bytes"),
        }
    }
}

impl Fault {
    fn arm(self, sim: &SimStorage) {
        match self {
            Fault::Call { op, n, sticky } => sim.inject_fault(op, n, sticky),
            Fault::Capacity(cap) => sim.set_capacity(Some(cap)),
        }
    }

    /// What the error a caller sees must mention.
    fn cause(self) -> &'static str {
        match self {
            Fault::Call { .. } => "injected fault",
            Fault::Capacity(_) => "disk full",
        }
    }

    /// Whether the contract demands poisoning: a failed file sync. (A failed directory sync
    /// need not poison: an engine may rely on one only for state it has not acknowledged yet,
    /// or for removals it can redo; the crash checks catch any that loses data.)
    fn poisons(self) -> bool {
        matches!(
            self,
            Fault::Call {
                op: FaultOp::Sync,
                ..
            }
        )
    }

    /// Whether reads are expected to fail from now on (a sticky read or open fault).
    fn blocks_reads(self) -> bool {
        matches!(
            self,
            Fault::Call {
                op: FaultOp::Read | FaultOp::Open,
                sticky: true,
                ..
            }
        )
    }

    fn sticky(self) -> bool {
        matches!(self, Fault::Call { sticky: true, .. } | Fault::Capacity(_))
    }
}

/// `0..calls`, or `max` of them spread evenly.
fn points(calls: u64, max: u64) -> Vec<u64> {
    if calls <= max {
        return (0..calls).collect();
    }
    (0..max).map(|i| i * calls / max).collect()
}

fn open(
    f: &dyn EngineFactory,
    sim: &SimStorage,
    policy: SyncPolicy,
) -> crate::Result<Box<dyn Engine>> {
    f.open(Arc::new(sim.clone()), Path::new(DIR), policy)
}

fn dry_run(
    f: &dyn EngineFactory,
    c: &FaultConfig,
    steps: &[Step],
    op: FaultOp,
) -> Result<u64, String> {
    let sim = SimStorage::new();
    let engine = open(f, &sim, c.policy).map_err(|e| format!("open without faults: {e}"))?;
    let before = sim.calls(op);
    for step in steps {
        apply_step(&*engine, step)
            .map_err(|e| format!("workload without faults: {step:?}: {e}"))?;
    }
    drop(engine);
    Ok(sim.calls(op) - before)
}

/// Bytes the storage holds after open, and the most it holds at any step of the workload.
fn growth(f: &dyn EngineFactory, c: &FaultConfig, steps: &[Step]) -> Result<(u64, u64), String> {
    let sim = SimStorage::new();
    let engine = open(f, &sim, c.policy).map_err(|e| format!("open without faults: {e}"))?;
    let used = |sim: &SimStorage| -> u64 {
        sim.all_files()
            .iter()
            .map(|p| sim.file_len(p).unwrap_or(0))
            .sum()
    };
    let base = used(&sim);
    let mut peak = base;
    for step in steps {
        apply_step(&*engine, step).map_err(|e| format!("workload without faults: {e}"))?;
        peak = peak.max(used(&sim));
    }
    Ok((base, peak.max(base + 1)))
}

/// Runs one step; reads return their result so the caller can check it.
fn apply_step(engine: &dyn Engine, step: &Step) -> crate::Result<Option<Option<Vec<u8>>>> {
    match step {
        Step::Put(k, v) => engine.put(&key(*k), v).map(|()| None),
        Step::Delete(k) => engine.delete(&key(*k)).map(|()| None),
        Step::Batch(ops) => engine.write(&batch(ops)).map(|()| None),
        Step::Get(k) => engine.get(&key(*k)).map(|v| Some(v.map(|v| v.to_vec()))),
        Step::Sync => engine.sync().map(|()| None),
        Step::Compact => engine.compact().map(|_| None),
        Step::Scan(..) | Step::Reopen | Step::Crash(..) => Ok(None),
    }
}

fn is_write(step: &Step) -> bool {
    matches!(step, Step::Put(..) | Step::Delete(_) | Step::Batch(_))
}

/// The states the engine may legally be in.
struct Tracker {
    candidates: Vec<Contents>,
    /// The errors callers saw, for failure messages.
    errors: Vec<String>,
}

/// Past this many candidate states a run stops: the oracle would say too little.
const MAX_CANDIDATES: usize = 64;

impl Tracker {
    fn new() -> Self {
        Tracker {
            candidates: vec![Contents::new()],
            errors: Vec::new(),
        }
    }

    fn acked(&mut self, step: &Step) {
        let all = std::mem::take(&mut self.candidates);
        for mut c in all {
            apply(&mut c, step);
            self.push(c);
        }
    }

    fn uncertain(&mut self, step: &Step) {
        for mut c in self.candidates.clone() {
            apply(&mut c, step);
            self.push(c);
        }
    }

    fn push(&mut self, c: Contents) {
        if !self.candidates.contains(&c) {
            self.candidates.push(c);
        }
    }

    /// Whether some candidate agrees with a read. The others are kept: a failed write that a
    /// read did not see may still surface after a restart (its bytes can sit in the page cache
    /// after a failed sync), so a read says nothing about what a crash may leave.
    fn read(&self, k: &[u8], got: Option<&[u8]>) -> bool {
        self.candidates
            .iter()
            .any(|c| c.get(k).map(Vec::as_slice) == got)
    }

    fn legal(&self, got: &Contents) -> bool {
        self.candidates.contains(got)
    }
}

fn clear(e: &Error, cause: &str) -> bool {
    match e {
        Error::Io { .. } => e.to_string().contains(cause),
        Error::Poisoned { cause: c } => c.contains(cause),
        _ => false,
    }
}

/// A write made after the first error, to a key outside the workload's, so it is told apart.
fn probe_step(i: u8) -> Step {
    Step::Put(100 + i, format!("probe-{i}").into_bytes())
}

fn run_one(
    f: &dyn EngineFactory,
    c: &FaultConfig,
    steps: &[Step],
    fault: Fault,
    report: &mut FaultReport,
) -> Result<(), String> {
    let sim = SimStorage::new();
    let engine = open(f, &sim, c.policy).map_err(|e| format!("open: {e}"))?;
    fault.arm(&sim);
    report.runs += 1;
    let mut tracker = Tracker::new();
    let saw_error = drive(&*engine, steps, fault, &sim, &mut tracker, report)?;
    if sim.fault_fired() {
        report.faults_injected += 1;
    }
    if saw_error {
        report.caller_errors += 1;
        report.disk_full += u64::from(matches!(fault, Fault::Capacity(_)));
    } else if fault.poisons() && sim.fault_fired() {
        // The failed sync happened where no caller saw it (background work); the engine
        // must still know it is poisoned.
        if engine.sync().is_ok() {
            return Err(
                "a sync failed in the background, yet a later sync() reported success".into(),
            );
        }
    }
    drop(engine);
    check_reopens(f, c, &sim, &tracker, report)
}

/// Runs the steps, checking each error and what follows it. True if a caller saw an error.
fn drive(
    engine: &dyn Engine,
    steps: &[Step],
    fault: Fault,
    sim: &SimStorage,
    tracker: &mut Tracker,
    report: &mut FaultReport,
) -> Result<bool, String> {
    let mut saw_error = false;
    let mut probes = 0u8;
    for (i, step) in steps.iter().enumerate() {
        match apply_step(engine, step) {
            Ok(read) => {
                if is_write(step) {
                    tracker.acked(step);
                }
                if let (Step::Get(k), Some(got)) = (step, read)
                    && !tracker.read(&key(*k), got.as_deref())
                {
                    return Err(format!(
                        "step {i} {step:?}: read {got:?}, which no legal state holds"
                    ));
                }
            }
            Err(Error::Poisoned { .. }) if saw_error => return Ok(true),
            Err(e) => {
                if !saw_error && !clear(&e, fault.cause()) {
                    return Err(format!("step {i} {step:?}: unclear error: {e:?}"));
                }
                if !saw_error && !sim.fault_fired() && matches!(fault, Fault::Call { .. }) {
                    return Err(format!(
                        "step {i} {step:?}: error before the fault fired: {e}"
                    ));
                }
                saw_error = true;
                tracker
                    .errors
                    .push(format!("step {i} {}: {e}", step_name(step)));
                // Even a first `Poisoned` is uncertain: the poison may have struck (in a
                // background job) while this write was already in the log.
                if is_write(step) {
                    tracker.uncertain(step);
                }
                if fault.poisons() && sim.fault_fired() {
                    check_poisoned(engine, tracker, probes)?;
                    report.poison_checks += 1;
                    return Ok(true);
                }
                if !fault.blocks_reads() {
                    check_reads(engine, tracker).map_err(|e| format!("after step {i}: {e}"))?;
                }
                if fault.sticky() || tracker.candidates.len() > MAX_CANDIDATES {
                    return Ok(true);
                }
                probes += 1;
                let probe = probe_step(probes);
                match apply_step(engine, &probe) {
                    Ok(_) => tracker.acked(&probe),
                    Err(Error::Poisoned { .. }) => return Ok(true),
                    Err(_) => tracker.uncertain(&probe),
                }
            }
        }
    }
    Ok(saw_error)
}

/// After a failed sync: writes are refused with `Poisoned`, reads go on.
fn check_poisoned(engine: &dyn Engine, tracker: &Tracker, probes: u8) -> Result<(), String> {
    let probe = probe_step(probes + 1);
    match apply_step(engine, &probe) {
        Err(Error::Poisoned { .. }) => {}
        other => {
            return Err(format!(
                "a write after a failed sync returned {other:?}, expected Error::Poisoned"
            ));
        }
    }
    check_reads(engine, tracker).map_err(|e| format!("poisoned engine: {e}"))
}

/// Every workload key (and probe key) reads without error, as some candidate says.
fn check_reads(engine: &dyn Engine, tracker: &Tracker) -> Result<(), String> {
    for k in (0..24u8).chain(100..110) {
        let got = engine
            .get(&key(k))
            .map_err(|e| format!("reads must go on, but get {:?} failed: {e}", key(k)))?;
        if !tracker.read(&key(k), got.as_deref()) {
            return Err(format!(
                "get {:?} returned {got:?}, which no legal state holds",
                key(k)
            ));
        }
    }
    Ok(())
}

fn check_reopens(
    f: &dyn EngineFactory,
    c: &FaultConfig,
    sim: &SimStorage,
    tracker: &Tracker,
    report: &mut FaultReport,
) -> Result<(), String> {
    let modes: Vec<CrashMode> = if c.policy == SyncPolicy::Always {
        c.crash_modes.clone()
    } else {
        vec![CrashMode::KeepAll]
    };
    for (seed, mode) in modes.into_iter().enumerate() {
        let image = sim.crash(mode, seed as u64 + 1);
        let engine = open(f, &image, c.policy).map_err(|e| {
            format!(
                "reopen after {mode:?}: {e}; errors callers saw: {:?}",
                tracker.errors
            )
        })?;
        let got = read_all(&*engine).map_err(|e| format!("after {mode:?} and reopen: {e}"))?;
        if !tracker.legal(&got) {
            return Err(format!(
                "after {mode:?} and reopen the engine holds {} keys matching none of {} legal \
                 states; errors callers saw: {:?}; differences from the fully acknowledged \
                 state: {}",
                got.len(),
                tracker.candidates.len(),
                tracker.errors,
                differences(&got, &tracker.candidates[0])
            ));
        }
        engine
            .put(b"after-reopen", b"ok")
            .map_err(|e| format!("write after {mode:?} and reopen: {e}"))?;
        report.reopens_checked += 1;
    }
    Ok(())
}

fn step_name(step: &Step) -> String {
    match step {
        Step::Put(k, v) => format!("put {} ({} B)", String::from_utf8_lossy(&key(*k)), v.len()),
        Step::Batch(ops) => format!("batch of {}", ops.len()),
        other => format!("{other:?}"),
    }
}

/// Keys whose values differ, as `key: got -> expected` with value lengths.
fn differences(got: &Contents, want: &Contents) -> String {
    let keys: std::collections::BTreeSet<&Vec<u8>> = got.keys().chain(want.keys()).collect();
    let shown = |v: Option<&Vec<u8>>| v.map_or("absent".to_string(), |v| format!("{} B", v.len()));
    keys.into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| {
            format!(
                "{}: {} instead of {}",
                String::from_utf8_lossy(k),
                shown(got.get(k)),
                shown(want.get(k))
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A full scan, with errors returned rather than panicking.
fn read_all(engine: &dyn Engine) -> Result<Contents, String> {
    let mut out = Contents::new();
    for item in engine
        .scan(KeyRange::all())
        .map_err(|e| format!("scan: {e}"))?
    {
        let (k, v) = item.map_err(|e| format!("scan item: {e}"))?;
        out.insert(k.to_vec(), v.to_vec());
    }
    Ok(out)
}

fn recovery_sweep(
    f: &dyn EngineFactory,
    c: &FaultConfig,
    steps: &[Step],
    report: &mut FaultReport,
) -> Result<(), String> {
    let sim = SimStorage::new();
    let engine = open(f, &sim, c.policy).map_err(|e| format!("open: {e}"))?;
    let mut model = Contents::new();
    for step in steps {
        apply_step(&*engine, step).map_err(|e| format!("workload without faults: {e}"))?;
        apply(&mut model, step);
    }
    drop(engine);
    let pristine = sim.crash(CrashMode::KeepAll, 0);
    for &op in &c.ops {
        let probe = pristine.crash(CrashMode::KeepAll, 0);
        let before = probe.calls(op);
        drop(open(f, &probe, c.policy).map_err(|e| format!("open without faults: {e}"))?);
        for sticky in [false, true] {
            for n in points(probe.calls(op) - before, c.max_points) {
                let fault = Fault::Call { op, n, sticky };
                recover_once(f, c, &pristine, fault, &model, report)
                    .map_err(|e| format!("{fault} during open: {e}"))?;
            }
        }
    }
    Ok(())
}

fn recover_once(
    f: &dyn EngineFactory,
    c: &FaultConfig,
    pristine: &SimStorage,
    fault: Fault,
    model: &Contents,
    report: &mut FaultReport,
) -> Result<(), String> {
    let image = pristine.crash(CrashMode::KeepAll, 0);
    fault.arm(&image);
    report.runs += 1;
    match open(f, &image, c.policy) {
        Err(e) if clear(&e, fault.cause()) => report.caller_errors += 1,
        Err(e) => return Err(format!("unclear error from open: {e:?}")),
        Ok(engine) => match read_all(&*engine) {
            Ok(got) if &got == model => {}
            Ok(got) => {
                return Err(format!(
                    "open served {} keys, expected {}",
                    got.len(),
                    model.len()
                ));
            }
            Err(e) if fault.blocks_reads() && e.contains(fault.cause()) => {}
            Err(e) => return Err(e),
        },
    }
    if image.fault_fired() {
        report.faults_injected += 1;
        report.recovery_faults += 1;
    }
    image.clear_faults();
    for mode in [CrashMode::KeepAll, CrashMode::DropUnsynced] {
        let after = image.crash(mode, 1);
        let engine = open(f, &after, c.policy)
            .map_err(|e| format!("open after the fault, {mode:?}: {e}"))?;
        let got = read_all(&*engine)?;
        if &got != model {
            return Err(format!(
                "after a failed recovery and {mode:?}, open served {} keys, expected {}",
                got.len(),
                model.len()
            ));
        }
        report.reopens_checked += 1;
    }
    Ok(())
}
