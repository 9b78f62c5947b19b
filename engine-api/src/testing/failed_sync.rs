//! A failed sync, a reopen in the same process, then a power loss.
//!
//! After `fsync` reports an error, Linux may mark the failed pages clean: the page cache still
//! holds the bytes, the disk never will. An engine reopened in the same boot reads those bytes
//! from the cache; if it then seals, hints, merges or otherwise builds on them (and syncs
//! something that now succeeds), a later power loss leaves a file that claims data it does not
//! hold. [`SimStorage`] models exactly this: a failed sync's bytes stay in the live image but are
//! lost from the durable one, even after a later sync succeeds.
//!
//! For each file sync the workload makes (all of them, or an even sample), a fresh run fails
//! that sync once, under [`SyncPolicy::Always`], and the workload stops at the first error (the
//! engine is poisoned from then on). Then:
//! 1. the engine is dropped and reopened **on the same storage**, with no power loss: the open
//!    must succeed and hold a legal state (the acknowledged writes, with or without the one
//!    that failed);
//! 2. the reopened engine takes a few writes, each acknowledged under `Always`, and is closed;
//! 3. the storage loses power ([`CrashMode::POWER_LOSS`], a few seeds each) and the engine is
//!    opened on each image: the open must succeed and hold a legal state with every write
//!    acknowledged before and after the reopen.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::EngineFactory;
use super::conformance::{Contents, DIR};
use super::faults::workload;
use super::model::{Step, apply, batch, key};
use crate::{CrashMode, Engine, FaultOp, KeyRange, SimStorage, SyncPolicy};

/// How many failing syncs to try and how many crash images per power-loss mode.
#[derive(Clone, Debug)]
pub struct FailedSyncConfig {
    /// Most injection points (an even sample of the workload's file syncs when there are more).
    pub max_points: u64,
    /// Crash images tried per power-loss mode.
    pub seeds: u64,
}

impl Default for FailedSyncConfig {
    fn default() -> Self {
        FailedSyncConfig {
            max_points: 24,
            seeds: 2,
        }
    }
}

/// What the check did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailedSyncReport {
    /// Runs in which the injected sync failure fired.
    pub failures: u64,
    /// Reopens on the same storage after the failure.
    pub reopens: u64,
    /// Opens after a power loss that followed such a reopen.
    pub power_losses: u64,
}

impl fmt::Display for FailedSyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "failed sync then reopen: {} failures, {} same-process reopens, {} power-loss \
             images checked",
            self.failures, self.reopens, self.power_losses
        )
    }
}

/// Runs the check described in the module documentation.
///
/// # Errors
/// The first violation: which sync failed, at which stage, and what the engine held.
pub fn check(
    factory: &dyn EngineFactory,
    config: &FailedSyncConfig,
) -> Result<FailedSyncReport, String> {
    let steps = workload();
    let syncs = count_syncs(factory, &steps)?;
    let mut report = FailedSyncReport::default();
    for n in points(syncs, config.max_points) {
        one(factory, config, &steps, n, &mut report)
            .map_err(|e| format!("sync {n} of {syncs} failed: {e}"))?;
    }
    Ok(report)
}

fn points(calls: u64, max: u64) -> Vec<u64> {
    if calls <= max {
        return (0..calls).collect();
    }
    (0..max).map(|i| i * calls / max).collect()
}

fn open(f: &dyn EngineFactory, sim: &SimStorage) -> crate::Result<Box<dyn Engine>> {
    f.open(Arc::new(sim.clone()), Path::new(DIR), SyncPolicy::Always)
}

fn count_syncs(f: &dyn EngineFactory, steps: &[Step]) -> Result<u64, String> {
    let sim = SimStorage::new();
    let engine = open(f, &sim).map_err(|e| format!("open without faults: {e}"))?;
    let before = sim.calls(FaultOp::Sync);
    for step in steps {
        apply_step(&*engine, step).map_err(|e| format!("workload without faults: {e}"))?;
    }
    let n = sim.calls(FaultOp::Sync) - before;
    drop(engine);
    Ok(n)
}

fn apply_step(engine: &dyn Engine, step: &Step) -> crate::Result<()> {
    match step {
        Step::Put(k, v) => engine.put(&key(*k), v),
        Step::Delete(k) => engine.delete(&key(*k)),
        Step::Batch(ops) => engine.write(&batch(ops)),
        Step::Sync => engine.sync(),
        Step::Compact => engine.compact().map(drop),
        Step::Get(k) => engine.get(&key(*k)).map(drop),
        Step::Scan(..) | Step::Reopen | Step::Crash(..) => Ok(()),
    }
}

/// The legal states: the acknowledged writes, with or without the one that failed.
struct Legal {
    candidates: Vec<Contents>,
}

impl Legal {
    fn acked(&mut self, step: &Step) {
        for c in &mut self.candidates {
            apply(c, step);
        }
    }

    fn uncertain(&mut self, step: &Step) {
        let mut with = self.candidates.clone();
        for c in &mut with {
            apply(c, step);
        }
        for c in with {
            if !self.candidates.contains(&c) {
                self.candidates.push(c);
            }
        }
    }

    fn check(&self, got: &Contents, stage: &str) -> Result<(), String> {
        if self.candidates.contains(got) {
            return Ok(());
        }
        let want = &self.candidates[0];
        let missing: Vec<String> = want
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(*v))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        Err(format!(
            "{stage}: the engine holds {} keys, matching none of {} legal states \
             (keys missing or different from the acknowledged state: {missing:?})",
            got.len(),
            self.candidates.len()
        ))
    }
}

fn one(
    f: &dyn EngineFactory,
    config: &FailedSyncConfig,
    steps: &[Step],
    n: u64,
    report: &mut FailedSyncReport,
) -> Result<(), String> {
    let sim = SimStorage::new();
    let engine = open(f, &sim).map_err(|e| format!("open: {e}"))?;
    sim.inject_fault(FaultOp::Sync, n, false);
    let mut legal = Legal {
        candidates: vec![Contents::new()],
    };
    for step in steps {
        let writes = matches!(step, Step::Put(..) | Step::Delete(_) | Step::Batch(_));
        match apply_step(&*engine, step) {
            Ok(()) if writes => legal.acked(step),
            Ok(()) => {}
            Err(_) => {
                if writes {
                    legal.uncertain(step);
                }
                break;
            }
        }
    }
    drop(engine);
    if !sim.fault_fired() {
        return Ok(());
    }
    report.failures += 1;
    sim.clear_faults();
    // 1. Reopen in the same process: the failed bytes are still in the page cache.
    let engine = open(f, &sim).map_err(|e| format!("reopen on the same storage: {e}"))?;
    let got = read_all(&*engine).map_err(|e| format!("reopen on the same storage: {e}"))?;
    legal.check(&got, "reopen on the same storage")?;
    report.reopens += 1;
    // 2. Writes acknowledged after the reopen.
    for i in 0..3u8 {
        let step = Step::Put(120 + i, format!("after-reopen-{i}").into_bytes());
        apply_step(&*engine, &step).map_err(|e| format!("write after the reopen: {e}"))?;
        legal.acked(&step);
    }
    drop(engine);
    // 3. Power loss.
    for mode in CrashMode::POWER_LOSS {
        for seed in 0..config.seeds {
            let image = sim.crash(mode, seed * 31 + n);
            let stage = format!("power loss ({mode:?}, seed {seed}) after the reopen");
            let engine = open(f, &image).map_err(|e| format!("{stage}: open failed: {e}"))?;
            let got = read_all(&*engine).map_err(|e| format!("{stage}: {e}"))?;
            legal.check(&got, &stage)?;
            report.power_losses += 1;
        }
    }
    Ok(())
}

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
