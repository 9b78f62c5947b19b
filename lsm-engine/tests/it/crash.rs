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
