//! Three replicas on the in-memory network: a leader lost, a replica catching up from the log,
//! one brought back by a snapshot, one whose storage lost power in the middle of an append.
//! Nothing acknowledged may be lost in any of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use engine_api::{CrashMode, FaultOp};
use openraft::RaftLogReader;
use openraft::storage::RaftLogStorage;
use raft_kv::LogStore;

use crate::cluster::{Cluster, run};
use crate::engines::{Kind, Mode, open};
use crate::per_engine;

/// Snapshots so rare that no test below takes one unless it means to.
const NO_SNAPSHOTS: u64 = 100_000;

fn key(i: usize) -> String {
    format!("key{i:04}")
}

fn value(i: usize, round: usize) -> String {
    format!("value{i}-round{round}")
}

/// Puts keys `range` (value of `round`) through the leader and records each acknowledged one.
async fn write(
    cluster: &Cluster,
    range: std::ops::Range<usize>,
    round: usize,
    acked: &mut BTreeMap<String, String>,
) {
    for i in range {
        cluster.put(&key(i), &value(i, round)).await;
        acked.insert(key(i), value(i, round));
    }
}

/// Every acknowledged write, read on replica `id` after it caught up.
async fn assert_replica_has(cluster: &Cluster, id: u64, acked: &BTreeMap<String, String>) {
    cluster.wait_caught_up(id).await;
    for (k, v) in acked {
        assert_eq!(
            cluster.get_local(id, k).as_ref(),
            Some(v),
            "replica {id}, key {k}"
        );
    }
}

/// The leader loses power; a new one is elected and every acknowledged write reads back,
/// linearizably, through it; the old leader comes back and catches up.
fn writes_survive_the_leaders_loss(kind: Kind) {
    run(async {
        let mut cluster = Cluster::start(kind, Mode::Always, NO_SNAPSHOTS).await;
        let mut acked = BTreeMap::new();
        write(&cluster, 0..40, 0, &mut acked).await;
        let old = cluster.leader().await;
        cluster.stop(old, CrashMode::DropUnsynced).await;
        let new = cluster.leader().await;
        assert_ne!(new, old, "a running replica leads");
        for (k, v) in &acked {
            assert_eq!(
                cluster.get(k).await.as_ref(),
                Some(v),
                "key {k} after the leader's loss"
            );
        }
        write(&cluster, 20..50, 1, &mut acked).await;
        cluster.start_node(old).await;
        assert_replica_has(&cluster, old, &acked).await;
        cluster.shutdown().await;
    });
}

/// A follower's process dies; the group goes on; it restarts and catches up from the log.
fn a_replica_that_was_down_catches_up_from_the_log(kind: Kind) {
    run(async {
        let mut cluster = Cluster::start(kind, Mode::Always, NO_SNAPSHOTS).await;
        let mut acked = BTreeMap::new();
        write(&cluster, 0..10, 0, &mut acked).await;
        let down = cluster.follower().await;
        cluster.stop(down, CrashMode::KeepAll).await;
        write(&cluster, 5..60, 1, &mut acked).await;
        cluster.start_node(down).await;
        assert_replica_has(&cluster, down, &acked).await;
        let metrics = cluster.nodes[&down].raft().metrics().borrow().clone();
        assert_eq!(
            metrics.snapshot, None,
            "caught up from the log, not a snapshot"
        );
        cluster.shutdown().await;
    });
}

/// A follower is down while the others snapshot and purge past its log; when it returns the
/// leader installs a snapshot on it.
fn a_replica_too_far_behind_gets_a_snapshot(kind: Kind) {
    run(async {
        let mut cluster = Cluster::start(kind, Mode::Always, 20).await;
        let mut acked = BTreeMap::new();
        write(&cluster, 0..5, 0, &mut acked).await;
        let down = cluster.follower().await;
        let behind = cluster.nodes[&down]
            .raft()
            .metrics()
            .borrow()
            .last_log_index;
        cluster.stop(down, CrashMode::DropUnsynced).await;
        write(&cluster, 0..70, 1, &mut acked).await;
        let leader = cluster.nodes[&cluster.leader().await].clone();
        let wait = leader.raft().wait(Some(Duration::from_secs(20)));
        let purged_past = move |m: &openraft::RaftMetrics<u64, openraft::BasicNode>| {
            m.purged.map(|p| p.index) > behind
        };
        wait.metrics(purged_past, "leader purged past the follower's log")
            .await
            .expect("leader purged");
        cluster.start_node(down).await;
        assert_replica_has(&cluster, down, &acked).await;
        let snapshot = cluster.nodes[&down].raft().metrics().borrow().snapshot;
        assert!(
            snapshot.map(|s| s.index) > behind,
            "installed a snapshot: {snapshot:?}"
        );
        cluster.shutdown().await;
    });
}

/// A follower's storage loses power right after its `n`th sync, in the middle of appends;
/// reopened, its log holds every entry it acknowledged to the leader, with no hole, and it
/// catches up. Under both supported sync set-ups, several cut points and power-loss modes.
fn a_replica_crashed_mid_append_recovers_its_log(kind: Kind) {
    let cases = [
        (Mode::Always, 3, CrashMode::DropUnsynced),
        (Mode::Always, 8, CrashMode::GarbleTail),
        (Mode::NeverWithSyncs, 5, CrashMode::DropUnsynced),
        (Mode::NeverWithSyncs, 9, CrashMode::KeepPrefix),
    ];
    for (mode, n, crash) in cases {
        run(crashed_mid_append(kind, mode, n, crash));
    }
}

async fn crashed_mid_append(kind: Kind, mode: Mode, n: u64, crash: CrashMode) {
    let what = format!("{kind:?} {mode:?}, power lost after sync {n}, {crash:?}");
    let mut cluster = Cluster::start(kind, mode, NO_SNAPSHOTS).await;
    let mut acked = BTreeMap::new();
    write(&cluster, 0..5, 0, &mut acked).await;
    let victim = cluster.follower().await;
    cluster.sims[&victim].freeze_after(&[FaultOp::Sync], n);
    write(&cluster, 0..40, 1, &mut acked).await;
    assert!(
        cluster.sims[&victim].is_frozen(),
        "{what}: the cut point was never reached"
    );
    let leader = cluster.leader().await;
    let replication = cluster.nodes[&leader]
        .raft()
        .metrics()
        .borrow()
        .replication
        .clone();
    let matched = replication.expect("leader metrics")[&victim].expect("some entries acked");
    cluster.stop(victim, crash).await;

    let engine = open(kind, mode, &cluster.sims[&victim]);
    let mut log = LogStore::open(Arc::clone(&engine), mode.durability()).expect("open log");
    let state = log.get_log_state().await.expect("log state");
    let last = state.last_log_id.expect("a log").index;
    assert!(
        last >= matched.index,
        "{what}: log ends at {last}, acked {matched}"
    );
    let entries = log.try_get_log_entries(..=last).await.expect("read log");
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(
        indexes,
        (0..=last).collect::<Vec<_>>(),
        "{what}: a hole in the log"
    );
    assert!(
        log.read_vote().await.expect("read vote").is_some(),
        "{what}: vote lost"
    );
    drop((log, engine));

    cluster.start_node(victim).await;
    write(&cluster, 40..45, 2, &mut acked).await;
    assert_replica_has(&cluster, victim, &acked).await;
    for (k, v) in &acked {
        assert_eq!(cluster.get(k).await.as_ref(), Some(v), "{what}: key {k}");
    }
    cluster.shutdown().await;
}

per_engine! {
    writes_survive_the_leaders_loss => super::writes_survive_the_leaders_loss;
    a_replica_that_was_down_catches_up_from_the_log =>
        super::a_replica_that_was_down_catches_up_from_the_log;
    a_replica_too_far_behind_gets_a_snapshot => super::a_replica_too_far_behind_gets_a_snapshot;
    a_replica_crashed_mid_append_recovers_its_log =>
        super::a_replica_crashed_mid_append_recovers_its_log;
}
