//! The SIGKILL harness against the reference engine, and proof that it catches an engine that
//! acknowledges writes before handing them to the OS.

use std::path::Path;
use std::sync::Arc;

use engine_api::testing::kill::{KillConfig, run_or_child};
use engine_api::testing::{EngineFactory, reference_factory};
use engine_api::{
    BatchOp, CompactionSummary, Engine, KeyRange, Result, Scan, Stats, Storage, SyncPolicy, Value,
    WriteBatch,
};
use parking_lot::Mutex;

engine_api::kill_test!(
    reference_always,
    reference_factory(),
    KillConfig {
        kills: 60,
        ..KillConfig::default()
    }
);

engine_api::kill_test!(
    reference_never,
    reference_factory(),
    KillConfig {
        policy: SyncPolicy::Never,
        kills: 40,
        seed: 0x5eed_0002,
        ..KillConfig::default()
    }
);

engine_api::kill_test!(
    reference_periodic,
    reference_factory(),
    KillConfig {
        policy: SyncPolicy::Periodic(std::time::Duration::from_millis(5)),
        kills: 20,
        seed: 0x5eed_0003,
        ..KillConfig::default()
    }
);

/// Acknowledges writes while holding them in memory, and hands them to the reference engine
/// eight at a time: a process kill loses acknowledged writes.
struct Lossy {
    inner: Box<dyn Engine>,
    held: Mutex<Vec<BatchOp>>,
}

impl Lossy {
    fn hold(&self, ops: &[BatchOp]) -> Result<()> {
        let mut held = self.held.lock();
        held.extend_from_slice(ops);
        if held.len() >= 8 {
            self.release(&mut held)?;
        }
        Ok(())
    }

    fn release(&self, held: &mut Vec<BatchOp>) -> Result<()> {
        for op in held.drain(..) {
            match op {
                BatchOp::Put { key, value } => self.inner.put(&key, &value)?,
                BatchOp::Delete { key } => self.inner.delete(&key)?,
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.release(&mut self.held.lock())
    }
}

impl Engine for Lossy {
    fn name(&self) -> &'static str {
        "lossy"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.hold(&[BatchOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }])
    }

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.flush()?;
        self.inner.get(key)
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        self.hold(&[BatchOp::Delete { key: key.to_vec() }])
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.hold(batch.ops())
    }

    fn scan(&self, range: KeyRange) -> Result<Scan<'_>> {
        self.flush()?;
        self.inner.scan(range)
    }

    fn sync(&self) -> Result<()> {
        self.flush()?;
        self.inner.sync()
    }

    fn compact(&self) -> Result<CompactionSummary> {
        self.flush()?;
        self.inner.compact()
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

fn lossy_factory() -> impl EngineFactory {
    |storage: Arc<dyn Storage>, dir: &Path, sync: SyncPolicy| -> Result<Box<dyn Engine>> {
        let inner = reference_factory().open(storage, dir, sync)?;
        Ok(Box::new(Lossy {
            inner,
            held: Mutex::new(Vec::new()),
        }))
    }
}

#[test]
fn kill_check_catches_lost_acknowledged_writes() {
    let config = KillConfig {
        kills: 20,
        ..KillConfig::default()
    };
    let test = "kill_check_catches_lost_acknowledged_writes";
    match run_or_child(&lossy_factory(), module_path!(), test, &config) {
        Err(e) => assert!(
            e.contains("match neither the acknowledged state"),
            "failed for another reason: {e}"
        ),
        Ok(report) => {
            panic!("the kill check passed an engine that loses acknowledged writes: {report}")
        }
    }
}
