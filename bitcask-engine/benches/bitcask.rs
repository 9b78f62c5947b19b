//! Criterion benchmarks of the Bitcask engine on the real file system (a temporary directory),
//! 16-byte keys and 100-byte values, `SyncPolicy::Never` unless named otherwise.
//!
//! Run: `cargo bench -p bitcask-engine -- --quick`. Besides criterion's timings, some benches
//! print figures criterion does not compute (latency percentiles, keydir bytes per key, keys
//! per second of open) to stderr, prefixed with `figure:`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine_api::{CommonOptions, Engine, OsStorage, SyncPolicy, WriteBatch};

const VALUE: [u8; 100] = [0x5a; 100];

fn key(i: u64) -> [u8; 16] {
    // Spread keys the way hashed user ids would be, but keep them reproducible.
    let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&mixed.to_le_bytes());
    k[8..].copy_from_slice(&i.to_le_bytes());
    k
}

fn options(sync: SyncPolicy) -> BitcaskOptions {
    let mut o = BitcaskOptions {
        common: CommonOptions {
            sync,
            storage: Arc::new(OsStorage::new()),
            ..CommonOptions::default()
        },
        max_file_size: 64 << 20,
        ..BitcaskOptions::default()
    };
    o.merge.auto = false;
    o
}

fn open(dir: &Path, sync: SyncPolicy) -> BitcaskEngine {
    BitcaskEngine::open(dir, options(sync)).expect("open")
}

fn load(e: &BitcaskEngine, n: u64) {
    for i in 0..n {
        e.put(&key(i), &VALUE).expect("put");
    }
}

fn put(c: &mut Criterion) {
    let mut g = c.benchmark_group("put");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path(), SyncPolicy::Never);
    let mut i = 0u64;
    g.bench_function("never/1-thread", |b| {
        b.iter(|| {
            i += 1;
            e.put(&key(i), &VALUE).expect("put");
        });
    });
    drop(e);
    g.finish();
}

/// Synced puts, one thread and eight threads sharing syncs (group commit).
fn put_always(c: &mut Criterion) {
    let mut g = c.benchmark_group("put-always");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for threads in [1u64, 8] {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Arc::new(open(dir.path(), SyncPolicy::Always));
        g.throughput(Throughput::Elements(threads));
        g.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let e = Arc::clone(&e);
                        std::thread::spawn(move || {
                            for i in 0..iters {
                                e.put(&key(t << 40 | i), &VALUE).expect("put");
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().expect("writer");
                }
                start.elapsed()
            });
        });
    }
    g.finish();
}

fn batch_put(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch-put");
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path(), SyncPolicy::Never);
    let mut next = 0u64;
    for size in [10u64, 100] {
        g.throughput(Throughput::Elements(size));
        g.bench_function(BenchmarkId::new("ops", size), |b| {
            b.iter(|| {
                let mut batch = WriteBatch::new();
                for _ in 0..size {
                    next += 1;
                    batch.put(&key(next), &VALUE);
                }
                e.write(&batch).expect("write");
            });
        });
    }
    g.finish();
}

/// Gets of keys whose records are in the page cache, with latency percentiles.
fn get(c: &mut Criterion) {
    let n = 200_000u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path(), SyncPolicy::Never);
    load(&e, n);
    let mut g = c.benchmark_group("get");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("cached", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            e.get(&key(i)).expect("get")
        });
    });
    g.finish();
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    for j in 0..500_000u64 {
        let k = key((j * 7919) % n);
        let t = Instant::now();
        let v = e.get(&k).expect("get");
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        assert!(v.is_some());
        hist.record(ns).expect("record");
    }
    eprintln!(
        "figure: cached get latency over 500000 gets of {n} keys: p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max()
    );
}

/// Merge throughput: 200 000 keys written twice (half the bytes dead), then `compact`.
fn merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let n = 200_000u64;
    let record = 19 + 16 + 100;
    g.throughput(Throughput::Bytes(2 * n * record));
    g.bench_function("compact-50pct-dead", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut o = options(SyncPolicy::Never);
                o.max_file_size = 8 << 20;
                let e = BitcaskEngine::open(dir.path(), o).expect("open");
                load(&e, n);
                load(&e, n);
                let t = Instant::now();
                let s = e.compact().expect("compact");
                total += t.elapsed();
                assert_eq!(s.records_out, n);
            }
            total
        });
    });
    g.finish();
}

/// A key of `len` bytes (16 or more): [`key`] padded with a repeat of its own bytes.
fn long_key(i: u64, len: usize) -> Vec<u8> {
    key(i).iter().copied().cycle().take(len).collect()
}

/// Keydir bytes per live key beyond the key (memory figures, printed; no timing): 1 M keys of
/// 16, 32 and 64 bytes after loading, then after deleting every other key. The keydir's
/// figure is capacities, not lengths, so it is exact and the same on every run.
fn keydir_memory(_c: &mut Criterion) {
    let n = 1_000_000u64;
    for len in [16usize, 32, 64] {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = open(dir.path(), SyncPolicy::Never);
        let empty = e.stats().index_memory_bytes;
        let beyond = |live: u64| {
            let used = e.stats().index_memory_bytes - empty;
            engine_api::ratio(used, live) - len as f64
        };
        for i in 0..n {
            e.put(&long_key(i, len), b"v").expect("put");
        }
        let loaded = beyond(n);
        for i in (0..n).step_by(2) {
            e.delete(&long_key(i, len)).expect("delete");
        }
        let halved = beyond(n / 2);
        eprintln!(
            "figure: keydir, {len}-byte keys: {loaded:.1} bytes per key beyond the key after loading {n}, {halved:.1} after deleting half"
        );
    }
}

/// Keydir bytes per key (a memory figure, printed) and open time with and without hints.
fn open_and_keydir(c: &mut Criterion) {
    let n = 1_000_000u64;
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let e = open(dir.path(), SyncPolicy::Never);
        let before = e.stats().index_memory_bytes;
        load(&e, n);
        let s = e.stats();
        let per_key = engine_api::ratio(s.index_memory_bytes - before, n);
        eprintln!(
            "figure: keydir {} bytes for {n} 16-byte keys: {per_key:.1} bytes per key, {:.1} beyond the key",
            s.index_memory_bytes,
            per_key - 16.0
        );
    }
    let read_only = || {
        let mut o = options(SyncPolicy::Never);
        o.common.read_only = true;
        o
    };
    let mut g = c.benchmark_group("open");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(n));
    g.bench_function("from-hints/1M-keys", |b| {
        b.iter(|| {
            let e = BitcaskEngine::open(dir.path(), read_only()).expect("open");
            assert_eq!(e.recovery_report().files_scanned, 0);
            e
        });
    });
    let scan_dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if !name.to_string_lossy().ends_with(".hint") {
            std::fs::copy(entry.path(), scan_dir.path().join(name)).expect("copy");
        }
    }
    g.bench_function("scanning-data/1M-keys", |b| {
        b.iter(|| {
            let e = BitcaskEngine::open(scan_dir.path(), read_only()).expect("open");
            assert_eq!(e.recovery_report().files_from_hints, 0);
            e
        });
    });
    g.finish();
}

/// `criterion_group!` makes an undocumented function: a private module keeps it out of the
/// missing-docs lint.
mod group {
    use super::*;
    criterion_group!(
        benches,
        put,
        batch_put,
        get,
        put_always,
        merge,
        keydir_memory,
        open_and_keydir
    );
}
criterion_main!(group::benches);
