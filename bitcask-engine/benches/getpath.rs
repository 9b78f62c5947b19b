//! A fixed-work driver for instruction counts (not a criterion bench): loads `KEYS` random keys
//! (16-byte keys, 100-byte values, default options, `SyncPolicy::Never`), then runs `GETS`
//! random gets of loaded keys. Run it under callgrind and divide the inclusive cost of
//! `Engine::get` by its call count (`docs/results/profiles/`):
//!
//! `KEYS=100000 GETS=50000 valgrind --tool=callgrind target/release/deps/getpath-*`

use std::sync::Arc;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{CommonOptions, Engine, OsStorage, SyncPolicy};

fn key(i: u64) -> [u8; 16] {
    let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&mixed.to_le_bytes());
    k[8..].copy_from_slice(&i.to_le_bytes());
    k
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let keys = env("KEYS", 100_000);
    let gets = env("GETS", 50_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let options = BitcaskOptions {
        common: CommonOptions {
            sync: SyncPolicy::Never,
            storage: Arc::new(OsStorage::new()),
            ..CommonOptions::default()
        },
        ..BitcaskOptions::default()
    };
    let e = BitcaskEngine::open(dir.path(), options).expect("open");
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..keys {
        e.put(&key(i), &[0x5a; 100]).expect("put");
    }
    let mut found = 0u64;
    for _ in 0..gets {
        found += u64::from(e.get(&key(next() % keys)).expect("get").is_some());
    }
    println!("keys {keys} gets {gets} found {found}");
}
