//! Proof that the `Periodic(d)` conformance check catches an engine whose acknowledged writes
//! lag behind its periodic sync.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use engine_api::testing::conformance::periodic_policy_loses_at_most_one_period;
use engine_api::testing::{EngineFactory, reference_factory};
use engine_api::{
    CompactionSummary, Engine, KeyRange, Result, Scan, Stats, Storage, SyncPolicy, Value,
    WriteBatch,
};
use parking_lot::Mutex;

/// Acknowledges puts at once but hands each to the reference engine only 40 puts later, so the
/// periodic sync never covers the last 40 acknowledged writes.
struct Lagging {
    inner: Box<dyn Engine>,
    held: Mutex<VecDeque<(Vec<u8>, Vec<u8>)>>,
}

impl Engine for Lagging {
    fn name(&self) -> &'static str {
        "lagging"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut held = self.held.lock();
        held.push_back((key.to_vec(), value.to_vec()));
        if held.len() > 40
            && let Some((k, v)) = held.pop_front()
        {
            self.inner.put(&k, &v)?;
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.inner.get(key)
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        self.inner.delete(key)
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.inner.write(batch)
    }

    fn scan(&self, range: KeyRange) -> Result<Scan<'_>> {
        self.inner.scan(range)
    }

    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    fn compact(&self) -> Result<CompactionSummary> {
        self.inner.compact()
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

fn lagging_factory() -> impl EngineFactory {
    |storage: Arc<dyn Storage>, dir: &Path, sync: SyncPolicy| -> Result<Box<dyn Engine>> {
        let inner = reference_factory().open(storage, dir, sync)?;
        Ok(Box::new(Lagging {
            inner,
            held: Mutex::new(VecDeque::new()),
        }))
    }
}

#[test]
fn periodic_check_catches_writes_the_periodic_sync_never_covers() {
    let caught = std::panic::catch_unwind(|| {
        periodic_policy_loses_at_most_one_period(&lagging_factory());
    });
    let message = caught
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        message.contains("acknowledged before a whole periodic sync ran"),
        "the check passed (or failed for another reason) on an engine that loses covered \
         writes: {message:?}"
    );
}
