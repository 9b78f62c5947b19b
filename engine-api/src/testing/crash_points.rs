//! Crash at every durability point of a workload.
//!
//! A dry run counts the storage calls after which a power loss can leave a different durable
//! state ([`FaultOp::DURABILITY_POINTS`]: syncs, directory syncs, renames, removes) made by a
//! workload and the clean shutdown after it. Then, for each point `k`, a fresh run is frozen
//! right after the `k`th such call ([`SimStorage::freeze_after`]); the frozen storage is crashed
//! in every power-loss [`CrashMode`] (with several seeds), the engine reopened on the image, and
//! its contents checked:
//! - under [`SyncPolicy::Always`], they must equal the acknowledged state, or the acknowledged
//!   state plus the one write that was in flight when the power went;
//! - under the other policies, they must equal the state after some prefix of the writes since
//!   the last durable point (or that plus the in-flight write).
//!
//! Background work (flushes, compactions, merges) runs as usual and is frozen mid-step like the
//! foreground. This is what checks that merge and compaction commit protocols lose nothing at
//! any step.

use std::path::Path;
use std::sync::Arc;

use super::EngineFactory;
use super::conformance::{Contents, DIR, contents};
use super::model::{Step, apply, batch, key};
use crate::{CrashMode, Engine, FaultOp, SimStorage, SyncPolicy};

/// Seeds tried per crash mode (modes with random choices differ per seed).
const SEEDS: u64 = 2;

/// What a crash-point run checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Durability points found by the dry run.
    pub points: u64,
    /// Crash images opened and checked.
    pub states_checked: u64,
}

/// A default workload: puts of mixed sizes, overwrites, deletes, batches, a sync and two
/// compactions, over a small key space. Deterministic.
pub fn default_workload() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..48u32 {
        let r = next();
        let k = u8::try_from(r % 12).unwrap_or(0) + 2;
        let len = if r % 9 == 0 { 900 } else { (r >> 8) % 60 };
        let value = vec![u8::try_from(i % 251).unwrap_or(0); usize::try_from(len).unwrap_or(0)];
        steps.push(match r % 10 {
            0..=5 => Step::Put(k, value),
            6 | 7 => Step::Delete(k),
            _ => Step::Batch(vec![(k, Some(value)), (k.wrapping_add(1) % 12 + 2, None)]),
        });
        if i == 16 {
            steps.push(Step::Sync);
        }
        if i == 24 || i == 40 {
            steps.push(Step::Compact);
        }
    }
    steps
}

/// Runs `steps` under `policy`, crashing at every durability point; panics on a violation.
pub fn run(f: &dyn EngineFactory, policy: SyncPolicy, steps: &[Step]) -> CrashReport {
    let config = CrashPoints {
        after: FaultOp::DURABILITY_POINTS.to_vec(),
        modes: CrashMode::POWER_LOSS.to_vec(),
    };
    run_with(f, policy, steps, &config)
}

/// Where [`run_with`] freezes the storage and which crash images it builds there.
#[derive(Clone, Debug)]
pub struct CrashPoints {
    /// Freeze right after each call of these kinds in turn. Adding [`FaultOp::Append`] reaches
    /// the states between an append and the sync that covers it (a seal appended and not yet
    /// synced, say), which the durability points alone almost never produce.
    pub after: Vec<FaultOp>,
    /// The crash modes tried at each point.
    pub modes: Vec<CrashMode>,
}

/// As [`run`], freezing after the calls and crashing in the modes `config` names.
pub fn run_with(
    f: &dyn EngineFactory,
    policy: SyncPolicy,
    steps: &[Step],
    config: &CrashPoints,
) -> CrashReport {
    let points = dry_run(f, policy, steps, &config.after);
    let mut report = CrashReport {
        points,
        states_checked: 0,
    };
    // A little past the dry run's count, in case background work makes more calls this time.
    for k in 1..=points + 2 {
        let sim = SimStorage::new();
        let engine = open(f, &sim, policy);
        sim.freeze_after(&config.after, k);
        let run = execute(&*engine, policy, steps);
        drop(engine);
        if !sim.is_frozen() {
            continue;
        }
        for &mode in &config.modes {
            for seed in 0..SEEDS {
                let image = sim.crash(mode, seed * 7919 + k);
                let engine = open(f, &image, policy);
                let got = contents(&*engine);
                assert!(
                    run.legal(&got, policy),
                    "crash after durability point {k} ({mode:?}, seed {seed}) under {policy:?}: \
                     the engine holds {} keys, matching no legal state\n got: {:?}\n acknowledged: {:?}\n in flight: {:?}",
                    got.len(),
                    got.keys().collect::<Vec<_>>(),
                    run.model.keys().collect::<Vec<_>>(),
                    run.in_flight,
                );
                report.states_checked += 1;
            }
        }
    }
    report
}

fn open(f: &dyn EngineFactory, sim: &SimStorage, policy: SyncPolicy) -> Box<dyn Engine> {
    f.open(Arc::new(sim.clone()), Path::new(DIR), policy)
        .unwrap_or_else(|e| panic!("open failed: {e}"))
}

fn dry_run(f: &dyn EngineFactory, policy: SyncPolicy, steps: &[Step], after: &[FaultOp]) -> u64 {
    let sim = SimStorage::new();
    let engine = open(f, &sim, policy);
    let before = sim.calls_of(after);
    let run = execute(&*engine, policy, steps);
    assert!(
        run.in_flight.is_none(),
        "the workload failed without any fault"
    );
    drop(engine);
    sim.calls_of(after) - before
}

/// The outcome of running a workload until it finished or a call failed.
struct Run {
    model: Contents,
    since_durable: Vec<Contents>,
    in_flight: Option<Step>,
}

impl Run {
    fn legal(&self, got: &Contents, policy: SyncPolicy) -> bool {
        let candidates: Vec<&Contents> = if policy == SyncPolicy::Always {
            vec![&self.model]
        } else {
            self.since_durable.iter().collect()
        };
        let with_in_flight = self.in_flight.as_ref().map(|step| {
            let mut m = self.model.clone();
            apply(&mut m, step);
            m
        });
        candidates.into_iter().any(|c| c == got) || with_in_flight.as_ref() == Some(got)
    }
}

fn execute(engine: &dyn Engine, policy: SyncPolicy, steps: &[Step]) -> Run {
    let mut run = Run {
        model: Contents::new(),
        since_durable: vec![Contents::new()],
        in_flight: None,
    };
    for step in steps {
        let result = match step {
            Step::Put(k, v) => engine.put(&key(*k), v),
            Step::Delete(k) => engine.delete(&key(*k)),
            Step::Batch(ops) => engine.write(&batch(ops)),
            Step::Sync => engine.sync(),
            Step::Compact => engine.compact().map(drop),
            Step::Get(_) | Step::Scan(..) | Step::Reopen | Step::Crash(..) => Ok(()),
        };
        if result.is_err() {
            run.in_flight = Some(step.clone());
            return run;
        }
        apply(&mut run.model, step);
        match step {
            Step::Sync => run.since_durable = vec![run.model.clone()],
            Step::Put(..) | Step::Delete(_) | Step::Batch(_) => {
                if policy == SyncPolicy::Always {
                    run.since_durable = vec![run.model.clone()];
                } else {
                    run.since_durable.push(run.model.clone());
                }
            }
            _ => {}
        }
    }
    run
}
