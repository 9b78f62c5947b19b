//! A simulated power loss at every sync, directory sync, rename and remove of flush-heavy
//! workloads: every flush and manifest commit (and rollover, with the tiny manifest limit) is
//! cut at each of its durability points, the engine reopened on the crash image and checked
//! against the model.

use engine_api::SyncPolicy;
use engine_api::testing::crash_points;
use engine_api::testing::model::Step;

use crate::common::tiny_factory;

/// Puts of 60 to 160 bytes over 12 keys (a flush every few writes with the tiny memtable),
/// deletes, batches, a sync, and compactions in the middle and at the end.
fn flush_heavy() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..40u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = u8::try_from(x % 12).unwrap_or(0) + 2;
        let len = 60 + usize::try_from((x >> 16) % 100).unwrap_or(0);
        let v = vec![u8::try_from(i % 200).unwrap_or(0); len];
        steps.push(match x % 8 {
            0 => Step::Delete(k),
            1 => Step::Batch(vec![(k, Some(v)), (k % 12 + 2, None)]),
            _ => Step::Put(k, v),
        });
        if i == 12 {
            steps.push(Step::Sync);
        }
        if i == 20 || i == 39 {
            steps.push(Step::Compact);
        }
    }
    steps
}

#[test]
fn crash_at_every_point_of_flushes_and_manifest_writes_always() {
    let report = crash_points::run(&tiny_factory(), SyncPolicy::Always, &flush_heavy());
    assert!(report.points > 40, "too few durability points: {report:?}");
    eprintln!("always: {report:?}");
}

#[test]
fn crash_at_every_point_of_flushes_and_manifest_writes_never() {
    let report = crash_points::run(&tiny_factory(), SyncPolicy::Never, &flush_heavy());
    assert!(report.points > 40, "too few durability points: {report:?}");
    eprintln!("never: {report:?}");
}

/// Many writes over few keys with the tiny options: L0 fills every few flushes, so background
/// compactions (with their logs, several outputs each, subcompactions for L0) and trivial moves
/// run throughout, and a full compaction ends it.
fn compaction_heavy() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..90u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = u8::try_from(x % 20).unwrap_or(0) + 2;
        let len = 80 + usize::try_from((x >> 16) % 120).unwrap_or(0);
        let v = vec![u8::try_from(i % 200).unwrap_or(0); len];
        steps.push(if x.is_multiple_of(9) {
            Step::Delete(k)
        } else {
            Step::Put(k, v)
        });
    }
    steps.push(Step::Compact);
    steps
}

#[test]
fn the_workload_runs_background_compactions() {
    let f = tiny_factory();
    let sim = engine_api::SimStorage::new();
    let e = engine_api::testing::EngineFactory::open(
        &f,
        std::sync::Arc::new(sim.clone()),
        std::path::Path::new("/db"),
        SyncPolicy::Always,
    )
    .unwrap();
    for step in compaction_heavy() {
        match step {
            Step::Put(k, v) => e.put(&engine_api::testing::model::key(k), &v).unwrap(),
            Step::Delete(k) => e.delete(&engine_api::testing::model::key(k)).unwrap(),
            _ => {}
        }
    }
    let s = e.stats();
    assert!(s.compactions >= 3, "{} compactions", s.compactions);
}

#[test]
fn crash_at_every_point_of_compaction_logs_and_commits_always() {
    let report = crash_points::run(&tiny_factory(), SyncPolicy::Always, &compaction_heavy());
    eprintln!("compactions, always: {report:?}");
}

#[test]
fn crash_at_every_point_of_compaction_logs_and_commits_never() {
    let report = crash_points::run(&tiny_factory(), SyncPolicy::Never, &compaction_heavy());
    eprintln!("compactions, never: {report:?}");
}
