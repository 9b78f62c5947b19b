//! A three-replica group in one process, on the in-memory network, each replica's engine on
//! its own `SimStorage` so a test can cut its power.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_api::{CrashMode, SimStorage};
use openraft::{Config, ServerState};
use raft_kv::network::mem::Router;
use raft_kv::{ClientError, KvNode, default_config};

use crate::engines::{Kind, Mode, open};

/// How long any wait in these tests may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// Runs `future` on a fresh multi-threaded runtime (the engines' calls block).
pub fn run<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(future)
}

pub struct Cluster {
    kind: Kind,
    mode: Mode,
    config: Arc<Config>,
    router: Router,
    pub sims: BTreeMap<u64, SimStorage>,
    pub nodes: BTreeMap<u64, Arc<KvNode>>,
    seed: u64,
}

impl Cluster {
    /// Starts replicas 1, 2 and 3, initializes the group and waits for a leader.
    pub async fn start(kind: Kind, mode: Mode, snapshot_every: u64) -> Cluster {
        let mut cluster = Cluster {
            kind,
            mode,
            config: default_config(snapshot_every),
            router: Router::new(),
            sims: BTreeMap::new(),
            nodes: BTreeMap::new(),
            seed: 1,
        };
        for id in 1..=3 {
            cluster.sims.insert(id, SimStorage::new());
            cluster.start_node(id).await;
        }
        let members = BTreeSet::from([1, 2, 3]);
        cluster.nodes[&1]
            .raft()
            .initialize(members)
            .await
            .expect("initialize");
        cluster.leader().await;
        cluster
    }

    /// Starts (or restarts) replica `id` on what its storage holds.
    pub async fn start_node(&mut self, id: u64) {
        let engine = open(self.kind, self.mode, &self.sims[&id]);
        let durability = self.mode.durability();
        let config = Arc::clone(&self.config);
        let node = KvNode::start(id, engine, durability, config, self.router.clone()).await;
        let node = node.expect("start replica");
        self.router.add(id, node.raft().clone());
        self.nodes.insert(id, Arc::new(node));
    }

    /// Takes replica `id` down: it leaves the network, stops, and its storage becomes what a
    /// crash in `crash` leaves (`KeepAll` for a process crash, the others for a power loss).
    pub async fn stop(&mut self, id: u64, crash: CrashMode) {
        self.router.remove(id);
        let node = self.nodes.remove(&id).expect("replica is running");
        let _ = node.raft().shutdown().await;
        drop(node);
        self.seed += 1;
        let image = self.sims[&id].crash(crash, self.seed);
        self.sims.insert(id, image);
    }

    /// The leader among the running replicas, once one leads.
    pub async fn leader(&self) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            for (id, node) in &self.nodes {
                if node.raft().metrics().borrow().state == ServerState::Leader {
                    return *id;
                }
            }
            assert!(Instant::now() < deadline, "no leader elected");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A running replica that does not lead.
    pub async fn follower(&self) -> u64 {
        let leader = self.leader().await;
        *self
            .nodes
            .keys()
            .find(|id| **id != leader)
            .expect("a follower")
    }

    /// Calls `op` on the leader until it is acknowledged, following elections.
    async fn through_leader<T, F, Fut>(&self, op: F) -> T
    where
        F: Fn(Arc<KvNode>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let leader = Arc::clone(&self.nodes[&self.leader().await]);
            match op(leader).await {
                Ok(value) => return value,
                Err(e) => assert!(Instant::now() < deadline, "no leader served the call: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Puts through the leader; returns once acknowledged.
    pub async fn put(&self, key: &str, value: &str) {
        self.through_leader(|n| async move { n.put(key.as_bytes(), value.as_bytes()).await })
            .await;
    }

    /// A linearizable read through the leader.
    pub async fn get(&self, key: &str) -> Option<String> {
        let value = self
            .through_leader(|n| async move { n.get(key.as_bytes()).await })
            .await;
        value.map(|v| String::from_utf8(v).expect("utf-8"))
    }

    /// Waits until replica `id` has applied everything the leader has in its log.
    pub async fn wait_caught_up(&self, id: u64) {
        let leader = self.leader().await;
        let last = self.nodes[&leader].raft().metrics().borrow().last_log_index;
        let wait = self.nodes[&id].raft().wait(Some(PATIENCE));
        wait.applied_index_at_least(last, "caught up")
            .await
            .expect("replica caught up");
    }

    /// What replica `id` has applied for `key`.
    pub fn get_local(&self, id: u64, key: &str) -> Option<String> {
        let value = self.nodes[&id]
            .get_local(key.as_bytes())
            .expect("local read");
        value.map(|v| String::from_utf8(v).expect("utf-8"))
    }

    /// Stops every replica.
    pub async fn shutdown(mut self) {
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.stop(id, CrashMode::KeepAll).await;
        }
    }
}
