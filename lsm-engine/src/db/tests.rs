//! Unit tests that need the engine's insides.

use std::sync::{Arc, Weak};

use engine_api::{CommonOptions, Engine, KeyRange, SimStorage, SyncPolicy};

use super::LsmEngine;
use crate::memtable::Memtable;
use crate::options::LsmOptions;

fn engine(sim: &SimStorage) -> LsmEngine {
    let options = LsmOptions {
        common: CommonOptions {
            storage: Arc::new(sim.clone()),
            sync: SyncPolicy::Never,
            ..CommonOptions::default()
        },
        ..LsmOptions::default()
    };
    LsmEngine::open("/db", options).unwrap()
}

/// The memtable (every node of its tree) is freed once its flush is committed and the last
/// scan reading it is dropped, range iterations included: no node outlives its memtable, as
/// they would with crossbeam-skiplist 0.1.3.
#[test]
fn memtable_is_freed_after_flush() {
    let sim = SimStorage::new();
    let e = engine(&sim);
    for i in 0..5000u32 {
        e.put(format!("key{i:06}").as_bytes(), &[7; 100]).unwrap();
    }
    let weak: Weak<Memtable> = Arc::downgrade(&e.inner.current().mem);
    for _ in 0..3 {
        assert_eq!(e.scan(KeyRange::all()).unwrap().count(), 5000);
    }
    let mut open_scan = e.scan(KeyRange::all()).unwrap();
    assert!(open_scan.next().is_some());
    e.flush().unwrap();
    assert!(
        weak.upgrade().is_some(),
        "a live scan still reads the memtable"
    );
    assert_eq!(open_scan.count(), 4999, "the scan goes on after the flush");
    assert!(
        weak.upgrade().is_none(),
        "the flushed memtable was not freed"
    );
    assert_eq!(e.get(b"key000042").unwrap().as_deref(), Some(&[7; 100][..]));
}
