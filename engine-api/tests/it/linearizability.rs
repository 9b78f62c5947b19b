//! The linearizability checker: hand-made histories it must accept and reject, the reference
//! engine under concurrent clients and compactions, and an engine with stale reads it must
//! catch.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use engine_api::testing::linearizability::{Call, Event, LinConfig, check, check_register};
use engine_api::testing::{EngineFactory, reference_factory};
use engine_api::{
    CompactionSummary, Engine, KeyRange, Result, Scan, Stats, Storage, SyncPolicy, Value,
    WriteBatch,
};
use parking_lot::Mutex;

fn ev(thread: usize, call: Call, invoke: u64, ret: u64) -> Event {
    Event {
        thread,
        call,
        invoke,
        ret,
    }
}

#[test]
fn overlapping_calls_may_take_effect_in_either_order() {
    // put 1 and put 2 overlap; a later read may see either, but two later reads in sequence
    // must agree with one order.
    let history = [
        ev(0, Call::Put(1), 0, 10),
        ev(1, Call::Put(2), 1, 11),
        ev(2, Call::Get(Some(1)), 12, 13),
        ev(2, Call::Get(Some(1)), 14, 15),
    ];
    assert!(check_register(None, &history).is_ok());
    let flipped = [
        ev(0, Call::Put(1), 0, 10),
        ev(1, Call::Put(2), 1, 11),
        ev(2, Call::Get(Some(2)), 12, 13),
    ];
    assert!(check_register(None, &flipped).is_ok());
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    let history = [
        ev(0, Call::Put(7), 0, 10),
        ev(1, Call::Get(None), 2, 3),
        ev(2, Call::Get(Some(7)), 4, 5),
        ev(1, Call::Get(Some(7)), 11, 12),
    ];
    assert!(check_register(None, &history).is_ok());
}

#[test]
fn a_stale_read_after_a_completed_write_is_rejected() {
    let history = [
        ev(0, Call::Put(1), 0, 1),
        ev(0, Call::Put(2), 2, 3),
        ev(1, Call::Get(Some(1)), 4, 5),
    ];
    let err = check_register(None, &history).unwrap_err();
    assert!(err.contains("not linearizable"), "{err}");
}

#[test]
fn values_cannot_come_back_after_a_delete() {
    let history = [
        ev(0, Call::Put(1), 0, 1),
        ev(0, Call::Delete, 2, 3),
        ev(1, Call::Get(None), 4, 5),
        ev(2, Call::Get(Some(1)), 6, 7),
    ];
    assert!(check_register(None, &history).is_err());
}

#[test]
fn two_readers_cannot_see_two_overlapping_writes_in_opposite_orders() {
    // Reader A sees 1 then 2, reader B sees 2 then 1, all after both writes completed.
    let history = [
        ev(0, Call::Put(1), 0, 5),
        ev(1, Call::Put(2), 0, 5),
        ev(2, Call::Get(Some(1)), 6, 7),
        ev(2, Call::Get(Some(2)), 8, 9),
        ev(3, Call::Get(Some(2)), 6, 7),
        ev(3, Call::Get(Some(1)), 8, 9),
    ];
    assert!(check_register(None, &history).is_err());
}

#[test]
fn reference_engine_is_linearizable_under_always() {
    let report =
        check(&reference_factory(), &LinConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.compactions > 0,
        "no compaction ran alongside the clients"
    );
    eprintln!("{report}");
}

#[test]
fn reference_engine_is_linearizable_under_never() {
    let config = LinConfig {
        policy: SyncPolicy::Never,
        seed: 0x2222,
        ..LinConfig::default()
    };
    let report = check(&reference_factory(), &config).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{report}");
}

/// Per key: reads served so far, and the copy they are served from.
type ReadCache = HashMap<Vec<u8>, (u32, Option<Value>)>;

/// Serves each key's reads from a per-key copy refreshed only every third read of it.
struct StaleReads {
    inner: Box<dyn Engine>,
    cache: Mutex<ReadCache>,
}

impl Engine for StaleReads {
    fn name(&self) -> &'static str {
        "stale"
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let mut cache = self.cache.lock();
        let entry = cache.entry(key.to_vec()).or_insert((0, None));
        if entry.0.is_multiple_of(3) {
            entry.1 = self.inner.get(key)?;
        }
        entry.0 += 1;
        Ok(entry.1.clone())
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

#[test]
fn stale_reads_are_caught() {
    let factory =
        |storage: Arc<dyn Storage>, dir: &Path, sync: SyncPolicy| -> Result<Box<dyn Engine>> {
            Ok(Box::new(StaleReads {
                inner: reference_factory().open(storage, dir, sync)?,
                cache: Mutex::new(HashMap::new()),
            }))
        };
    let config = LinConfig {
        rounds: 10,
        ..LinConfig::default()
    };
    match check(&factory, &config) {
        Err(e) => assert!(
            e.contains("not linearizable"),
            "failed for another reason: {e}"
        ),
        Ok(report) => panic!("stale reads passed the check: {report}"),
    }
}
