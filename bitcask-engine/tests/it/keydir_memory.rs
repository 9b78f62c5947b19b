//! The keydir's memory bound: at most 40 bytes per live key beyond the key itself, for 16, 32
//! and 64-byte keys, while loading and while deleting half of them (the table must give memory
//! back), and after reopening. Measured by `Stats::index_memory_bytes` (capacities, not
//! lengths) at every tenth of the load and of the deletes, so that points just after a growth
//! step are among them.

use std::sync::Arc;

use bitcask_engine::BitcaskEngine;
use engine_api::{Engine, SimStorage, SyncPolicy};

use crate::common::options;

/// Keys per measurement: about 400 per keydir shard, enough for growth steps to average out.
const KEYS: u64 = 100_000;
const BOUND: f64 = 40.0;

fn key(i: u64, len: usize) -> Vec<u8> {
    format!("{i:0len$}").into_bytes()
}

/// Bytes per live key beyond the key: `(memory - empty memory) / live - key_len`.
fn overhead(e: &BitcaskEngine, empty: u64, live: u64, key_len: usize) -> f64 {
    let used = e.stats().index_memory_bytes - empty;
    used as f64 / live as f64 - key_len as f64
}

#[test]
fn keydir_overhead_is_bounded_after_loads_and_mass_deletes() {
    let mut failures = Vec::new();
    for key_len in [16usize, 32, 64] {
        let sim = SimStorage::new();
        let open = || {
            BitcaskEngine::open("/db", options(Arc::new(sim.clone()), SyncPolicy::Never)).unwrap()
        };
        let e = open();
        let empty = e.stats().index_memory_bytes;
        let mut worst = [0.0f64; 2];
        for i in 0..KEYS {
            e.put(&key(i, key_len), b"v").unwrap();
            if (i + 1) % (KEYS / 10) == 0 {
                worst[0] = worst[0].max(overhead(&e, empty, i + 1, key_len));
            }
        }
        for i in 0..KEYS / 2 {
            e.delete(&key(2 * i, key_len)).unwrap();
            if (i + 1) % (KEYS / 20) == 0 {
                let live = KEYS - i - 1;
                worst[1] = worst[1].max(overhead(&e, empty, live, key_len));
            }
        }
        let halved = overhead(&e, empty, KEYS / 2, key_len);
        drop(e);
        // The keydir recovery builds (from hints and scans, pre-sized, then shrunk).
        let reopened = overhead(&open(), empty, KEYS / 2, key_len);
        eprintln!(
            "{key_len}-byte keys: at most {:.1} bytes beyond the key while loading, {:.1} while \
             deleting half, {halved:.1} at the end, {reopened:.1} after reopening",
            worst[0], worst[1]
        );
        let points = [
            ("loading", worst[0]),
            ("deleting half", worst[1]),
            ("reopening", reopened),
        ];
        for (point, got) in points {
            if got > BOUND {
                failures.push(format!(
                    "{key_len}-byte keys, {point}: {got:.1} bytes per key"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "keydir overhead above {BOUND}: {failures:?}"
    );
}
