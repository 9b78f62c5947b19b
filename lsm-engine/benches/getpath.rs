//! A fixed-work driver for instruction counts (not a criterion bench): loads `KEYS` random keys
//! (16-byte keys, 100-byte values, default options, `SyncPolicy::Never`), waits for compaction
//! to settle, then runs `GETS` random gets of loaded keys. Run it under callgrind and divide the
//! inclusive cost of `Engine::get` / `Engine::put` by their call counts (`docs/results/profiles/`):
//!
//! `KEYS=100000 GETS=50000 valgrind --tool=callgrind target/release/deps/getpath-*`
//! (`KEYS_DECIMAL=1`: zero-padded decimal keys, which share their first bytes;
//! `GETS_MISSING=1`: gets of keys never written, as the harness's readmissing;
//! `FULL_COMPACTION=1`: one full compaction before the gets, so every memtable is empty;
//! `BLOCK_CACHE_BYTES=n`: the block cache's size, small to make most gets miss it)

use std::sync::Arc;

use engine_api::{CommonOptions, Engine, OsStorage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

/// `KEYS_DECIMAL=1` writes keys as db_bench and the harness do: 16 zero-padded decimal digits.
fn key(i: u64) -> [u8; 16] {
    if std::env::var_os("KEYS_DECIMAL").is_some() {
        let mut k = [0u8; 16];
        k.copy_from_slice(format!("{i:016}").as_bytes());
        return k;
    }
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
    let options = LsmOptions {
        common: CommonOptions {
            sync: SyncPolicy::Never,
            storage: Arc::new(OsStorage::new()),
            ..CommonOptions::default()
        },
        block_cache_bytes: usize::try_from(env("BLOCK_CACHE_BYTES", 32 << 20)).expect("size"),
        ..LsmOptions::default()
    };
    let e = LsmEngine::open(dir.path(), options).expect("open");
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..keys {
        e.put(&key(next() % keys), &[0x5a; 100]).expect("put");
    }
    e.compaction_manager().wait_idle();
    if std::env::var_os("FULL_COMPACTION").is_some() {
        e.compact().expect("compact");
    }
    // Missing keys: numbers past the loaded ones, which hash (or print) like loaded keys.
    let missing = if std::env::var_os("GETS_MISSING").is_some() {
        keys
    } else {
        0
    };
    let mut found = 0u64;
    for _ in 0..gets {
        found += u64::from(e.get(&key(missing + next() % keys)).expect("get").is_some());
    }
    println!("keys {keys} gets {gets} found {found}");
}
