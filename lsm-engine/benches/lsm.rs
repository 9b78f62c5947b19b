//! Criterion benchmarks of the LSM engine: db_bench-style workloads on the real file system (a
//! temporary directory, 16-byte keys, 100-byte values, `SyncPolicy::Never`) and micro-benchmarks
//! of the bloom filter and of block seeks on an in-memory table.
//!
//! Run: `cargo bench -p lsm-engine -- --quick`. Besides criterion's timings, some benches print
//! figures to stderr prefixed with `figure:` (L0 shape, stats after loading).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_main};
use engine_api::{CommonOptions, Engine, KeyRange, OsStorage, SimStorage, Storage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions, SstFileReader, SstFileWriter, SstOptions};

const VALUE: [u8; 100] = [0x5a; 100];
/// Keys loaded before the read benchmarks.
const LOADED: u64 = 200_000;

fn key(i: u64) -> [u8; 16] {
    // Spread keys as hashed ids would be, reproducibly.
    let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&mixed.to_le_bytes());
    k[8..].copy_from_slice(&i.to_le_bytes());
    k
}

/// A key that is never loaded (`i` past every loaded index).
fn absent(i: u64) -> [u8; 16] {
    key(i + (1 << 40))
}

fn options() -> LsmOptions {
    LsmOptions {
        common: CommonOptions {
            sync: SyncPolicy::Never,
            storage: Arc::new(OsStorage::new()),
            ..CommonOptions::default()
        },
        memtable_bytes: 4 << 20,
        ..LsmOptions::default()
    }
}

fn open(dir: &Path) -> LsmEngine {
    LsmEngine::open(dir, options()).expect("open")
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fillrandom(c: &mut Criterion) {
    let mut g = c.benchmark_group("fillrandom");
    let n = 100_000u64;
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("100k-puts", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let e = open(dir.path());
                let mut rng = Rng(0x2545_f491_4f6c_dd1d);
                let started = Instant::now();
                for _ in 0..n {
                    e.put(&key(rng.next() % n), &VALUE).expect("put");
                }
                total += started.elapsed();
            }
            total
        });
    });
    g.finish();
}

/// An engine holding `LOADED` keys: compacted into the last level, then a few L0 tables and a
/// memtable on top, as a running engine would have.
fn loaded() -> (tempfile::TempDir, LsmEngine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path());
    for i in 0..LOADED {
        e.put(&key(i), &VALUE).expect("put");
    }
    e.compact().expect("compact");
    for i in (0..LOADED).step_by(5) {
        e.put(&key(i), &VALUE).expect("put");
    }
    let s = e.stats();
    let shape: Vec<(u32, u64)> = s
        .levels
        .iter()
        .filter(|l| l.files > 0)
        .map(|l| (l.level, l.files))
        .collect();
    eprintln!(
        "figure: loaded {LOADED} keys; (level, files) {shape:?}; index+filter+memtable memory {} KiB",
        s.index_memory_bytes / 1024
    );
    (dir, e)
}

fn readrandom(c: &mut Criterion) {
    let (_dir, e) = loaded();
    let mut g = c.benchmark_group("readrandom");
    g.throughput(Throughput::Elements(1));
    let mut rng = Rng(7);
    g.bench_function("hit", |b| {
        b.iter(|| {
            let v = e.get(&key(rng.next() % LOADED)).expect("get");
            assert!(v.is_some());
        });
    });
    g.bench_function("miss", |b| {
        b.iter(|| {
            let v = e.get(&absent(rng.next() % LOADED)).expect("get");
            assert!(v.is_none());
        });
    });
    g.finish();
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements(100));
    g.bench_function("100-keys-from-random-start", |b| {
        b.iter(|| {
            let start = key(rng.next() % LOADED);
            let n = e
                .scan(KeyRange::new(&start[..]..))
                .expect("scan")
                .take(100)
                .count();
            assert!(n > 0);
        });
    });
    g.throughput(Throughput::Elements(LOADED));
    g.sample_size(10);
    g.bench_function("full", |b| {
        b.iter(|| {
            assert_eq!(
                e.scan(KeyRange::all()).expect("scan").count() as u64,
                LOADED
            )
        });
    });
    g.finish();
}

fn flush(c: &mut Criterion) {
    let mut g = c.benchmark_group("flush");
    let n = 30_000u64;
    g.throughput(Throughput::Bytes(n * (16 + 100)));
    g.sample_size(10);
    g.bench_function("30k-entries-memtable-to-l0", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().expect("tempdir");
            let e = LsmEngine::open(
                dir.path(),
                LsmOptions {
                    memtable_bytes: 64 << 20,
                    ..options()
                },
            )
            .expect("open");
            let mut total = Duration::ZERO;
            for round in 0..iters {
                for i in 0..n {
                    e.put(&key(i + round * n), &VALUE).expect("put");
                }
                let started = Instant::now();
                e.flush().expect("flush");
                total += started.elapsed();
            }
            total
        });
    });
    g.finish();
}

/// Options of the leveled benchmarks: small enough that 200k keys make a multi-level tree.
fn leveled_options() -> LsmOptions {
    LsmOptions {
        memtable_bytes: 1 << 20,
        target_file_bytes: 1 << 20,
        max_bytes_for_level_base: 4 << 20,
        ..options()
    }
}

/// Prints write amplification and compaction cost of an engine's life so far.
fn report(what: &str, e: &LsmEngine) {
    let s = e.stats();
    let table_bytes: u64 = s.levels.iter().map(|l| l.bytes_written).sum();
    let io = s.io.total().bytes_written;
    let user = s.user_bytes_written.max(1);
    let used: Vec<(u32, u64)> = s
        .levels
        .iter()
        .filter(|l| l.files > 0)
        .map(|l| (l.level, l.files))
        .collect();
    eprintln!(
        "figure: {what}: write-amp {:.2} (flush+compaction bytes / user bytes), {:.2} (all bytes written at the storage seam / user bytes); {} compactions, {:.2} s wall, {:.2} s cpu; stalls {} ({:.2} s); (level, files) {used:?}",
        table_bytes as f64 / user as f64,
        io as f64 / user as f64,
        s.compactions,
        s.compaction_wall.as_secs_f64(),
        s.compaction_cpu.as_secs_f64(),
        s.stalls.count,
        s.stalls.time.as_secs_f64(),
    );
    eprintln!("{}", lsm_engine::compaction_table(&s));
}

fn leveled(c: &mut Criterion) {
    let n = 200_000u64;
    let mut g = c.benchmark_group("leveled");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    let mut reported = false;
    g.bench_function("fillrandom-then-overwrite-200k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let e = LsmEngine::open(dir.path(), leveled_options()).expect("open");
                let mut rng = Rng(0x5eed);
                for _ in 0..n {
                    e.put(&key(rng.next() % n), &VALUE).expect("put");
                }
                let started = Instant::now();
                for _ in 0..n {
                    e.put(&key(rng.next() % n), &VALUE).expect("put");
                }
                e.compaction_manager().wait_idle();
                total += started.elapsed();
                if !reported {
                    report("fillrandom + overwrite 200k x 116 B", &e);
                    reported = true;
                }
            }
            total
        });
    });
    g.finish();
    let dir = tempfile::tempdir().expect("tempdir");
    let e = LsmEngine::open(dir.path(), leveled_options()).expect("open");
    for i in 0..n {
        e.put(&key(i), &VALUE).expect("put");
    }
    e.compaction_manager().wait_idle();
    let mut g = c.benchmark_group("leveled");
    g.throughput(Throughput::Elements(1));
    let mut rng = Rng(99);
    g.bench_function("readrandom-after-compaction", |b| {
        b.iter(|| assert!(e.get(&key(rng.next() % n)).expect("get").is_some()));
    });
    g.finish();
}

/// An in-memory table of `n` keys (every even index, so odd ones are absent).
fn table(n: u64) -> (SimStorage, &'static Path) {
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new("/t")).expect("dir");
    let path = Path::new("/t/bench.sst");
    let mut keys: Vec<[u8; 16]> = (0..n).map(|i| key(2 * i)).collect();
    keys.sort_unstable();
    let mut w = SstFileWriter::create(&sim, path, SstOptions::default()).expect("create");
    for k in &keys {
        w.add(k, 1, Some(&VALUE)).expect("add");
    }
    w.finish().expect("finish");
    (sim, path)
}

fn micro(c: &mut Criterion) {
    let n = 100_000u64;
    let (sim, path) = table(n);
    let reader = SstFileReader::open_cached(&sim, path, 64 << 20).expect("open");
    let mut rng = Rng(11);
    let mut g = c.benchmark_group("bloom");
    g.throughput(Throughput::Elements(1));
    g.bench_function("probe-present", |b| {
        b.iter(|| assert!(reader.may_contain(&key(2 * (rng.next() % n)))));
    });
    g.bench_function("probe-absent", |b| {
        b.iter(|| reader.may_contain(&key(2 * (rng.next() % n) + 1)));
    });
    g.finish();
    // Warm the cache so the seek benchmark measures index and block seeks, not I/O.
    for i in 0..n {
        reader.get(&key(2 * i), 1).expect("get");
    }
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seek-cached", |b| {
        b.iter(|| {
            let got = reader.get(&key(2 * (rng.next() % n)), 1).expect("get");
            assert!(got.is_some());
        });
    });
    let uncached = SstFileReader::open(&sim, path).expect("open");
    g.bench_function("read-checksum-seek", |b| {
        b.iter(|| {
            let got = uncached.get(&key(2 * (rng.next() % n)), 1).expect("get");
            assert!(got.is_some());
        });
    });
    g.finish();
}

/// `criterion_group!` makes an undocumented function: a private module keeps it out of the
/// missing-docs lint.
mod group {
    use super::{fillrandom, flush, leveled, micro, readrandom};
    criterion::criterion_group!(benches, fillrandom, readrandom, flush, micro, leveled);
}
criterion_main!(group::benches);
