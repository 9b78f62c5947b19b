//! Leveled compaction: the shape it keeps, concurrent jobs on disjoint reservations, resuming an
//! interrupted job from its log, and space coming back after deletes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use engine_api::testing::hooked::{Before, Hook, HookedStorage, Op};
use engine_api::{CrashMode, Engine, FaultOp, KeyRange, SimStorage, SyncPolicy};
use lsm_engine::{JobKind, LsmEngine, LsmOptions, compaction_table};
use parking_lot::{Condvar, Mutex};

use crate::common::{key, tiny_options, value};

fn contents(e: &LsmEngine) -> BTreeMap<Vec<u8>, Vec<u8>> {
    e.scan(KeyRange::all())
        .unwrap()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

fn fill(e: &LsmEngine, n: u32, round: u32, model: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
    for i in 0..n {
        let k = key((i * 7919) % n);
        let v = value(i, round);
        e.put(&k, &v).unwrap();
        model.insert(k, v);
    }
}

#[test]
fn background_compaction_keeps_a_leveled_shape() {
    let sim = SimStorage::new();
    let e = LsmEngine::open(
        "/db",
        tiny_options(Arc::new(sim.clone()), SyncPolicy::Never),
    )
    .unwrap();
    let mut model = BTreeMap::new();
    for round in 0..3 {
        fill(&e, 1500, round, &mut model);
    }
    e.compaction_manager().wait_idle();
    let s = e.stats();
    eprintln!("{}", compaction_table(&s));
    assert_eq!(s.background_error, None, "background compaction stopped");
    assert!(s.levels[0].files < 2, "L0 not drained: {:?}", s.levels[0]);
    let used: Vec<usize> = s
        .levels
        .iter()
        .filter(|l| l.files > 0)
        .map(|l| l.level as usize)
        .collect();
    assert!(
        used.len() >= 3,
        "expected several levels in use, got {used:?}"
    );
    for l in &s.levels[1..6] {
        assert!(l.score < 1.0, "level {} still due: {l:?}", l.level);
    }
    let last = s.levels.last().unwrap();
    assert!(
        last.bytes > s.levels[5].bytes,
        "the last level is the largest"
    );
    let counts = e.compaction_manager().jobs_started();
    assert!(counts.merges > 5, "{counts:?}");
    let written: u64 = s.levels.iter().map(|l| l.bytes_written).sum();
    let amp = written as f64 / s.user_bytes_written as f64;
    assert!(amp > 1.0 && amp < 30.0, "write amplification {amp}");
    assert_eq!(contents(&e), model);
    drop(e);
    let e = LsmEngine::open("/db", tiny_options(Arc::new(sim), SyncPolicy::Never)).unwrap();
    assert_eq!(contents(&e), model);
}

#[test]
fn deletes_give_space_back_through_background_compactions() {
    let sim = SimStorage::new();
    let e = LsmEngine::open(
        "/db",
        tiny_options(Arc::new(sim.clone()), SyncPolicy::Never),
    )
    .unwrap();
    let mut model = BTreeMap::new();
    fill(&e, 2000, 0, &mut model);
    e.flush().unwrap();
    e.compaction_manager().wait_idle();
    let full = e.stats().disk_bytes;
    for i in 0..2000 {
        e.delete(&key(i)).unwrap();
    }
    e.flush().unwrap();
    e.compaction_manager().wait_idle();
    let s = e.stats();
    eprintln!("{}", compaction_table(&s));
    assert!(
        s.disk_bytes * 5 < full,
        "space not given back without compact(): {full} -> {} bytes",
        s.disk_bytes
    );
    assert_eq!(e.scan(KeyRange::all()).unwrap().count(), 0);
}

/// Holds every compaction-log creation at a gate: jobs stop just after their reservations
/// are taken, so the test can look at them side by side.
#[derive(Debug, Default)]
struct ClogGate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl ClogGate {
    fn release(&self) {
        *self.open.lock() = true;
        self.opened.notify_all();
    }
}

impl Hook for ClogGate {
    fn before(&self, op: &Op<'_>) -> Before {
        if matches!(op, Op::Create(..)) && op.on(".clog") {
            let mut open = self.open.lock();
            while !*open {
                self.opened.wait(&mut open);
            }
        }
        Before::Run
    }
}

#[test]
fn two_jobs_run_at_once_on_disjoint_reservations() {
    let sim = SimStorage::new();
    let mut model = BTreeMap::new();
    {
        let e = LsmEngine::open(
            "/db",
            tiny_options(Arc::new(sim.clone()), SyncPolicy::Never),
        )
        .unwrap();
        for round in 0..2 {
            fill(&e, 2000, round, &mut model);
        }
        e.compaction_manager().wait_idle();
    }
    // A steeper level ratio makes the upper levels far over their targets: several jobs are
    // due at once.
    let gated = HookedStorage::on(sim.clone(), ClogGate::default());
    let options = LsmOptions {
        level_size_multiplier: 16,
        max_background_compactions: 3,
        ..tiny_options(Arc::new(gated.clone()), SyncPolicy::Never)
    };
    let e = LsmEngine::open("/db", options).unwrap();
    // Merges wait at the gate; trivial moves (no log) finish and make room for more picks.
    let mut jobs = e.active_compactions();
    for _ in 0..500 {
        if jobs.iter().filter(|j| j.kind == JobKind::Merge).count() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        jobs = e.active_compactions();
    }
    gated.hook.release();
    let merges = jobs.iter().filter(|j| j.kind == JobKind::Merge).count();
    let shape: Vec<_> = jobs
        .iter()
        .map(|j| (j.kind, j.level, j.output_level, j.inputs.len()))
        .collect();
    eprintln!("running together: {shape:?}");
    assert!(merges >= 2, "only {merges} merge(s) ran at once: {shape:?}");
    let mut files = HashSet::new();
    for j in &jobs {
        for f in &j.inputs {
            assert!(files.insert(*f), "file {f} is in two jobs");
        }
    }
    for (i, a) in jobs.iter().enumerate() {
        for b in &jobs[i + 1..] {
            for ra in &a.reserved {
                for rb in b.reserved.iter().filter(|rb| rb.level == ra.level) {
                    let below = |hi: &Option<Vec<u8>>, lo: &Option<Vec<u8>>| matches!((hi, lo), (Some(h), Some(l)) if h < l);
                    assert!(
                        below(&ra.largest, &rb.smallest) || below(&rb.largest, &ra.smallest),
                        "jobs {} and {} both reserve overlapping ranges of L{}",
                        a.id,
                        b.id,
                        ra.level
                    );
                }
            }
        }
    }
    e.compaction_manager().wait_idle();
    assert_eq!(contents(&e), model);
}

#[test]
fn an_interrupted_compaction_resumes_from_its_last_finished_output() {
    let sim = SimStorage::new();
    let options = |sim: &SimStorage| LsmOptions {
        auto_compaction: false,
        max_subcompactions: 1,
        memtable_bytes: 64 * 1024,
        ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Always)
    };
    let e = LsmEngine::open("/db", options(&sim)).unwrap();
    let mut model = BTreeMap::new();
    fill(&e, 800, 0, &mut model);
    e.flush().unwrap();
    // The full compaction's creates: its log, then one per output. The seventh fails.
    sim.inject_fault(FaultOp::Create, 6, false);
    assert!(e.compact().is_err(), "the compaction should have failed");
    drop(e);
    let image = sim.crash(CrashMode::DropUnsynced, 1);
    let e = LsmEngine::open("/db", options(&image)).unwrap();
    e.compaction_manager().wait_idle();
    let counts = e.compaction_manager().jobs_started();
    assert_eq!(counts.resumed, 1, "{counts:?}");
    assert_eq!(counts.reused_outputs, 5, "{counts:?}");
    let s = e.stats();
    assert_eq!(
        s.levels[6].files,
        s.files.len() as u64,
        "everything is in the last level"
    );
    assert_eq!(contents(&e), model);
    for (k, v) in model.iter().step_by(37) {
        assert_eq!(e.get(k).unwrap().as_deref(), Some(v.as_slice()));
    }
    let logs = image
        .all_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".clog"))
        .count();
    assert_eq!(logs, 0, "a compaction log outlived its job");
}

/// A small deterministic generator (xorshift) for the random workloads.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn check_every_key(e: &LsmEngine, n: u32, model: &BTreeMap<Vec<u8>, Vec<u8>>, when: &str) {
    for i in 0..n {
        let k = key(i);
        let got = e.get(&k).unwrap();
        assert_eq!(
            got.as_deref(),
            model.get(&k).map(Vec::as_slice),
            "{when}: key {i} reads wrong"
        );
    }
    assert_eq!(
        contents(e),
        *model,
        "{when}: the scan differs from the model"
    );
}

#[test]
fn l0_never_lands_below_older_data_after_the_tree_is_reshaped() {
    let sim = SimStorage::new();
    let n = 1500;
    let mut model = BTreeMap::new();
    {
        // Small `max_bytes_for_level_base`: the data spreads over several levels.
        let e = LsmEngine::open(
            "/db",
            tiny_options(Arc::new(sim.clone()), SyncPolicy::Never),
        )
        .unwrap();
        fill(&e, n, 0, &mut model);
        e.compaction_manager().wait_idle();
    }
    // The default base size: the largest level alone would put the base level at the bottom,
    // under the data of the levels above it.
    let options = |sim: &SimStorage, auto_compaction: bool| LsmOptions {
        max_bytes_for_level_base: LsmOptions::default().max_bytes_for_level_base,
        l0_compaction_trigger: 1,
        auto_compaction,
        ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Never)
    };
    {
        // Random overwrites and deletes pile up in L0 (no background compaction yet), so that
        // at the next open L0 outscores every other level and is compacted first.
        let e = LsmEngine::open("/db", options(&sim, false)).unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..3000 {
            let k = key(rng.below(u64::from(n)) as u32);
            if rng.below(3) == 0 {
                e.delete(&k).unwrap();
                model.remove(&k);
            } else {
                let v = value(i, 7);
                e.put(&k, &v).unwrap();
                model.insert(k, v);
            }
        }
        e.flush().unwrap();
    }
    let e = LsmEngine::open("/db", options(&sim, true)).unwrap();
    e.compaction_manager().wait_idle();
    check_every_key(&e, n, &model, "after the compactions");
    drop(e);
    let e = LsmEngine::open("/db", options(&sim, true)).unwrap();
    check_every_key(&e, n, &model, "after reopening");
}

#[test]
fn tombstones_in_the_last_level_go_once_no_snapshot_needs_them() {
    let sim = SimStorage::new();
    let e = LsmEngine::open(
        "/db",
        tiny_options(Arc::new(sim.clone()), SyncPolicy::Never),
    )
    .unwrap();
    let mut model = BTreeMap::new();
    fill(&e, 1500, 0, &mut model);
    e.compact().unwrap();
    // A snapshot keeps both the tombstones and the data they delete: the last level ends up
    // tombstone-dense, and nothing ever scores the last level by size.
    let snap = e.snapshot();
    for k in model.keys() {
        e.delete(k).unwrap();
    }
    e.compact().unwrap();
    let held: u64 = e.stats().files.iter().map(|f| f.bytes).sum();
    assert!(held > 0, "the snapshot should hold the deleted data");
    drop(snap);
    e.compaction_manager().wait_idle();
    let s = e.stats();
    let left: u64 = s.files.iter().map(|f| f.bytes).sum();
    assert_eq!(
        left,
        0,
        "{held} bytes of deleted data stayed {left} bytes in the last level:\n{}",
        compaction_table(&s)
    );
    assert!(contents(&e).is_empty());
}
