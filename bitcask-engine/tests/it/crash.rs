//! A simulated power loss at every sync, directory sync, rename and remove of merge-heavy
//! workloads, each followed by a reopen checked against the model.

use engine_api::testing::crash_points::{self, CrashPoints, CrashReport};
use engine_api::testing::model::Step;
use engine_api::{CrashMode, FaultOp, SyncPolicy};

use crate::common::{tiny_factory, tiny_manual_factory};

/// Overwrites and deletes over few keys with values big enough to rotate 1 KiB files every
/// few writes, batches, and a `compact` every 12 steps: most durability points are merges.
fn merge_heavy(seed: u64, steps: usize) -> Vec<Step> {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for i in 0..steps {
        let r = next();
        let k = (r % 7) as u8 + 2;
        let value = vec![(i % 251) as u8; 60 + (r >> 20) as usize % 200];
        out.push(match r % 8 {
            0..=4 => Step::Put(k, value),
            5 | 6 => Step::Delete(k),
            _ => Step::Batch(vec![(k, Some(value)), ((k + 3) % 7 + 2, None)]),
        });
        if i % 12 == 11 {
            out.push(Step::Compact);
        }
    }
    out
}

/// Workload seeds for the extra crash test (`BITCASK_CRASH_SEEDS`, default 3, so seeds 1 and
/// 2): raise it for a longer soak.
fn seeds() -> u64 {
    std::env::var("BITCASK_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

fn check(report: CrashReport) {
    assert!(report.points > 20, "too few durability points: {report:?}");
    assert!(report.states_checked > 0);
}

#[test]
fn crash_at_every_merge_step_always() {
    check(crash_points::run(
        &tiny_manual_factory,
        SyncPolicy::Always,
        &merge_heavy(0x9e37_79b9, 40),
    ));
}

#[test]
fn crash_at_every_merge_step_never() {
    check(crash_points::run(
        &tiny_manual_factory,
        SyncPolicy::Never,
        &merge_heavy(0x1234_5678, 48),
    ));
}

#[test]
fn crash_at_every_point_with_background_merges() {
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        check(crash_points::run(
            &tiny_factory,
            policy,
            &merge_heavy(77, 36),
        ));
    }
}

#[test]
fn crash_at_every_point_of_more_workloads() {
    for seed in 1..seeds() {
        for policy in [SyncPolicy::Always, SyncPolicy::Never] {
            let steps = merge_heavy(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1, 40);
            check(crash_points::run(&tiny_manual_factory, policy, &steps));
            check(crash_points::run(&tiny_factory, policy, &steps));
        }
    }
}

/// A crash right after every preallocation and every cut of a preallocated tail (both are
/// `set_len`, [`FaultOp::Truncate`]) as well as every durability point of the merge-heavy
/// workload, in every crash mode: the states between a size change and the sync that makes it
/// durable. The durability-point suites above run through the same calls; this one shows
/// there are many (`points` counts them: none without preallocation).
#[test]
fn crash_at_every_preallocation_and_cut() {
    let only_truncate = CrashPoints {
        after: vec![FaultOp::Truncate],
        modes: CrashMode::ALL.to_vec(),
    };
    let mut everything = only_truncate.clone();
    everything.after.extend(FaultOp::DURABILITY_POINTS);
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let steps = merge_heavy(0x5eed_f00d, 40);
        let report = crash_points::run_with(&tiny_manual_factory, policy, &steps, &only_truncate);
        assert!(
            report.points >= 10,
            "too few preallocations and cuts: {report:?}"
        );
        check(crash_points::run_with(
            &tiny_manual_factory,
            policy,
            &steps,
            &everything,
        ));
    }
}
