//! Model-based test: random steps against an engine and a `BTreeMap`, compared after every
//! step, with `Reopen`, `Compact` and `Crash` steps.
//!
//! `Crash` is a simulated power loss ([`SimStorage::crash`]) in a random [`CrashMode`]. After it:
//! - under [`SyncPolicy::Always`], or in [`CrashMode::KeepAll`] (a process crash: the OS kept
//!   everything it was handed), the engine must hold exactly the acknowledged state;
//! - otherwise it must hold the state after some prefix of the writes made since the last point
//!   known durable (a `sync`, or a clean reopen): nothing acknowledged before that point lost,
//!   no hole in the write order, nothing that was never written, batches whole.
//!
//! Cases default to 32 per policy; set `CONFORMANCE_CASES` for more. The seed is fixed, so a
//! failure reproduces; proptest shrinks it to a short sequence of steps.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use super::EngineFactory;
use super::conformance::{Contents, contents};
use crate::{CrashMode, Engine, KeyRange, SimStorage, SyncPolicy, WriteBatch};

const KEYS: u8 = 24;

/// One step of the model test.
#[derive(Clone, Debug)]
pub enum Step {
    /// Put a value under key number `.0`.
    Put(u8, Vec<u8>),
    /// Delete key number `.0`.
    Delete(u8),
    /// A batch of puts (`Some`) and deletes (`None`).
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    /// Read key number `.0`.
    Get(u8),
    /// Scan from key `.0` to key `.1`, inclusive.
    Scan(u8, u8),
    /// `Engine::sync`.
    Sync,
    /// Drop the engine (a clean shutdown) and open it again.
    Reopen,
    /// `Engine::compact`.
    Compact,
    /// A simulated power loss, then open.
    Crash(CrashMode, u64),
}

/// Key number `i`: mostly printable, two binary, so ordering is tested at the byte extremes.
pub fn key(i: u8) -> Vec<u8> {
    match i {
        0 => vec![0x00],
        1 => vec![0xff, 0xfe],
        _ => format!("key{i:02}").into_bytes(),
    }
}

/// The batch a [`Step::Batch`] writes.
pub fn batch(ops: &[(u8, Option<Vec<u8>>)]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for (k, v) in ops {
        match v {
            Some(v) => batch.put(&key(*k), v),
            None => batch.delete(&key(*k)),
        };
    }
    batch
}

/// Applies a write step (put, delete, batch) to a model map; other steps change nothing.
pub fn apply(model: &mut Contents, step: &Step) {
    match step {
        Step::Put(k, v) => {
            model.insert(key(*k), v.clone());
        }
        Step::Delete(k) => {
            model.remove(&key(*k));
        }
        Step::Batch(ops) => {
            for (k, v) in ops {
                match v {
                    Some(v) => model.insert(key(*k), v.clone()),
                    None => model.remove(&key(*k)),
                };
            }
        }
        _ => {}
    }
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..48),
        1 => prop::collection::vec(any::<u8>(), 0..3000),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let k = 0..KEYS;
    let op = prop::option::weighted(0.8, value());
    prop_oneof![
        30 => (k.clone(), value()).prop_map(|(k, v)| Step::Put(k, v)),
        10 => k.clone().prop_map(Step::Delete),
        6 => prop::collection::vec((k.clone(), op), 1..8).prop_map(Step::Batch),
        8 => k.clone().prop_map(Step::Get),
        4 => (k.clone(), k).prop_map(|(a, b)| Step::Scan(a, b)),
        3 => Just(Step::Sync),
        3 => Just(Step::Reopen),
        3 => Just(Step::Compact),
        5 => (prop::sample::select(CrashMode::ALL.to_vec()), any::<u64>())
            .prop_map(|(m, s)| Step::Crash(m, s)),
    ]
}

/// Runs the model test for one policy; panics with the shrunk failing steps on failure.
pub fn run(f: &dyn EngineFactory, policy: SyncPolicy) {
    let cases = std::env::var("CONFORMANCE_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(32);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = prop::collection::vec(step(), 1..60);
    let result = runner.run(&strategy, |steps| {
        execute(f, policy, &steps).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("model test under {policy:?} failed: {e}");
    }
}

struct World<'a> {
    f: &'a dyn EngineFactory,
    policy: SyncPolicy,
    sim: SimStorage,
    engine: Option<Box<dyn Engine>>,
    model: Contents,
    /// States the engine may legally hold after a power loss: the last durable state and each
    /// state after a later write.
    since_durable: Vec<Contents>,
}

/// Runs one sequence of steps; `Err` describes the first divergence.
pub fn execute(f: &dyn EngineFactory, policy: SyncPolicy, steps: &[Step]) -> Result<(), String> {
    let sim = SimStorage::new();
    let engine = f
        .open(
            std::sync::Arc::new(sim.clone()),
            std::path::Path::new(super::conformance::DIR),
            policy,
        )
        .map_err(|e| format!("open: {e}"))?;
    let mut w = World {
        f,
        policy,
        sim,
        engine: Some(engine),
        model: Contents::new(),
        since_durable: vec![Contents::new()],
    };
    for (i, step) in steps.iter().enumerate() {
        w.step(step)
            .map_err(|e| format!("step {i} ({step:?}): {e}"))?;
    }
    Ok(())
}

impl World<'_> {
    fn engine(&self) -> Result<&dyn Engine, String> {
        self.engine
            .as_deref()
            .ok_or_else(|| "no engine".to_string())
    }

    fn wrote(&mut self) {
        if self.policy == SyncPolicy::Always {
            self.since_durable = vec![self.model.clone()];
        } else {
            self.since_durable.push(self.model.clone());
        }
    }

    fn durable_now(&mut self) {
        self.since_durable = vec![self.model.clone()];
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Put(k, v) => {
                self.engine()?.put(&key(*k), v).map_err(|e| e.to_string())?;
                self.model.insert(key(*k), v.clone());
                self.wrote();
            }
            Step::Delete(k) => {
                self.engine()?.delete(&key(*k)).map_err(|e| e.to_string())?;
                self.model.remove(&key(*k));
                self.wrote();
            }
            Step::Batch(ops) => self.batch(ops)?,
            Step::Get(k) => {
                let got = self.engine()?.get(&key(*k)).map_err(|e| e.to_string())?;
                let want = self.model.get(&key(*k));
                if got.as_deref() != want.map(Vec::as_slice) {
                    return Err(format!("get: engine {got:?}, model {want:?}"));
                }
            }
            Step::Scan(a, b) => self.scan(*a, *b)?,
            Step::Sync => {
                self.engine()?.sync().map_err(|e| e.to_string())?;
                self.durable_now();
            }
            Step::Reopen => {
                drop(self.engine.take());
                self.reopen()?;
                self.check_equal("reopen")?;
                self.durable_now();
            }
            Step::Compact => {
                self.engine()?.compact().map_err(|e| e.to_string())?;
                self.check_equal("compact")?;
            }
            Step::Crash(mode, seed) => self.crash(*mode, *seed)?,
        }
        Ok(())
    }

    fn batch(&mut self, ops: &[(u8, Option<Vec<u8>>)]) -> Result<(), String> {
        self.engine()?
            .write(&batch(ops))
            .map_err(|e| e.to_string())?;
        apply(&mut self.model, &Step::Batch(ops.to_vec()));
        self.wrote();
        Ok(())
    }

    fn scan(&self, a: u8, b: u8) -> Result<(), String> {
        let (lo, hi) = if key(a) <= key(b) {
            (key(a), key(b))
        } else {
            (key(b), key(a))
        };
        let range = KeyRange {
            start: Bound::Included(lo.clone()),
            end: Bound::Included(hi.clone()),
        };
        let got: Result<Vec<(Vec<u8>, Vec<u8>)>, _> = self
            .engine()?
            .scan(range)
            .map_err(|e| e.to_string())?
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect();
        let got = got.map_err(|e| e.to_string())?;
        let want: Vec<_> = self
            .model
            .range(lo..=hi)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if got != want {
            return Err(format!("scan: engine {got:?}, model {want:?}"));
        }
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), String> {
        let engine = self
            .f
            .open(
                std::sync::Arc::new(self.sim.clone()),
                std::path::Path::new(super::conformance::DIR),
                self.policy,
            )
            .map_err(|e| format!("reopen: {e}"))?;
        self.engine = Some(engine);
        Ok(())
    }

    fn crash(&mut self, mode: CrashMode, seed: u64) -> Result<(), String> {
        let image = self.sim.crash(mode, seed);
        drop(self.engine.take());
        self.sim = image;
        self.reopen()?;
        let got = self.read_all()?;
        let exact = self.policy == SyncPolicy::Always || mode == CrashMode::KeepAll;
        let legal = if exact {
            got == self.model
        } else {
            self.since_durable.contains(&got)
        };
        if !legal {
            return Err(format!(
                "after {mode:?} crash the engine holds {} keys matching no legal state \
                 (acknowledged state has {} keys; {} prefixes allowed)\n got:   {:?}\n model: {:?}",
                got.len(),
                self.model.len(),
                self.since_durable.len(),
                short(&got),
                short(&self.model),
            ));
        }
        self.model = got;
        self.durable_now();
        self.check_gets()
    }

    fn read_all(&self) -> Result<Contents, String> {
        let engine = self.engine()?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| contents(engine)))
            .map_err(|_| "full scan failed".to_string())
    }

    fn check_equal(&self, what: &str) -> Result<(), String> {
        let got = self.read_all()?;
        if got != self.model {
            return Err(format!(
                "after {what}: engine {:?}, model {:?}",
                short(&got),
                short(&self.model)
            ));
        }
        self.check_gets()
    }

    fn check_gets(&self) -> Result<(), String> {
        for k in 0..KEYS {
            let got = self.engine()?.get(&key(k)).map_err(|e| e.to_string())?;
            if got.as_deref() != self.model.get(&key(k)).map(Vec::as_slice) {
                return Err(format!("get {:?} disagrees with the model", key(k)));
            }
        }
        Ok(())
    }
}

/// Keys and value lengths, for readable failure messages.
fn short(map: &Contents) -> BTreeMap<String, usize> {
    map.iter()
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.len()))
        .collect()
}
