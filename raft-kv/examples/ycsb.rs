//! YCSB A (50 % reads, 50 % updates, scrambled-zipfian keys, as the harness draws them) on one
//! engine alone and on a three-replica group of the same engine, every write synced
//! (`SyncPolicy::Always`), on the real file system. Prints throughput, latency, and each
//! engine's write amplification (bytes its storage seam wrote per byte of key and value
//! updated) over the YCSB phase.
//!
//! ```text
//! cargo run --release -p raft-kv --features bench --example ycsb -- [records] [ops] [clients]
//! ```
//!
//! The group runs on the in-memory network: what is measured is the replicated log and the
//! engines under it, not TCP. Reads are linearizable reads through the leader.

use std::collections::BTreeSet;
use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_harness::workload::zipf::ScrambledZipfian;
use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{CommonOptions, Engine};
use lsm_engine::{LsmEngine, LsmOptions};
use openraft::ServerState;
use raft_kv::network::mem::Router;
use raft_kv::{Durability, KvNode, default_config};
use rand::{Rng, SeedableRng, rngs::StdRng};

const VALUE_SIZE: usize = 100;

/// Where requests go: one engine, or the leader of a group.
#[derive(Clone)]
enum Target {
    Single(Arc<dyn Engine>),
    Group(Arc<KvNode>),
}

impl Target {
    async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), Box<dyn Error + Send + Sync>> {
        match self {
            Target::Single(e) => e.put(key, value)?,
            Target::Group(n) => n.put(key, value).await?,
        }
        Ok(())
    }

    async fn get(&self, key: &[u8]) -> Result<(), Box<dyn Error + Send + Sync>> {
        match self {
            Target::Single(e) => drop(e.get(key)?),
            Target::Group(n) => drop(n.get(key).await?),
        }
        Ok(())
    }
}

fn key(id: u64) -> Vec<u8> {
    format!("user{id:012}").into_bytes()
}

fn open(name: &str, dir: &Path) -> Result<Arc<dyn Engine>, Box<dyn Error>> {
    let common = CommonOptions::default();
    Ok(match name {
        "lsm" => Arc::new(LsmEngine::open(
            dir,
            LsmOptions {
                common,
                ..LsmOptions::default()
            },
        )?),
        _ => {
            let options = BitcaskOptions {
                common,
                ..BitcaskOptions::default()
            };
            Arc::new(BitcaskEngine::open(dir, options)?)
        }
    })
}

/// Loads `records` keys with `clients` concurrent writers.
async fn load(target: &Target, records: u64, clients: u64) {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let target = target.clone();
            tokio::spawn(async move {
                let value = vec![b'v'; VALUE_SIZE];
                for id in (c..records).step_by(clients as usize) {
                    target.put(&key(id), &value).await.expect("load put");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("load task");
    }
}

/// Runs `ops` YCSB A operations over `clients` tasks; returns each op's latency and the
/// number of updates.
async fn ycsb_a(target: &Target, records: u64, ops: u64, clients: u64) -> (Vec<Duration>, u64) {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(42 + c);
                let mut chooser = ScrambledZipfian::new(records);
                let value = vec![b'u'; VALUE_SIZE];
                let (mut latencies, mut updates) = (Vec::new(), 0);
                for _ in 0..ops / clients {
                    let k = key(chooser.next_id(&mut rng));
                    let start = Instant::now();
                    if rng.gen_bool(0.5) {
                        target.put(&k, &value).await.expect("update");
                        updates += 1;
                    } else {
                        target.get(&k).await.expect("read");
                    }
                    latencies.push(start.elapsed());
                }
                (latencies, updates)
            })
        })
        .collect();
    let (mut all, mut updates) = (Vec::new(), 0);
    for task in tasks {
        let (latencies, n) = task.await.expect("ycsb task");
        all.extend(latencies);
        updates += n;
    }
    (all, updates)
}

fn written(engine: &Arc<dyn Engine>) -> (u64, u64) {
    let io = engine.stats().io.total();
    (io.bytes_written, io.syncs)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Runs the load and the YCSB phase on `target`, and prints one line.
async fn measure(
    label: &str,
    target: &Target,
    engines: &[Arc<dyn Engine>],
    (records, ops, clients): (u64, u64, u64),
) {
    load(target, records, clients).await;
    let before: Vec<_> = engines.iter().map(written).collect();
    let start = Instant::now();
    let (mut latencies, updates) = ycsb_a(target, records, ops, clients).await;
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let user_bytes = updates * (key(0).len() + VALUE_SIZE) as u64;
    let amps: Vec<String> = engines
        .iter()
        .zip(&before)
        .map(|(e, (b0, s0))| {
            let (b1, s1) = written(e);
            let amp = (b1 - b0) as f64 / user_bytes as f64;
            format!(
                "{amp:.1} ({:.1} syncs/update)",
                (s1 - s0) as f64 / updates as f64
            )
        })
        .collect();
    println!(
        "{label:<22} {:>8.0} ops/s  p50 {:>7.0} us  p99 {:>7.0} us  write amp {}",
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        amps.join(" | ")
    );
}

async fn group(name: &str, root: &Path, shape: (u64, u64, u64)) -> Result<(), Box<dyn Error>> {
    let router = Router::new();
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        let engine = open(name, &root.join(format!("{name}-replica-{id}")))?;
        let config = default_config(shape.0);
        let durability = Durability::EngineSyncsEveryWrite;
        let node = KvNode::start(id, engine, durability, config, router.clone()).await?;
        router.add(id, node.raft().clone());
        nodes.push(Arc::new(node));
    }
    nodes[0]
        .raft()
        .initialize(BTreeSet::from([1, 2, 3]))
        .await?;
    let wait = nodes[0].raft().wait(Some(Duration::from_secs(10)));
    wait.state(ServerState::Leader, "node 1 leads").await?;
    let engines: Vec<_> = nodes.iter().map(|n| Arc::clone(n.engine())).collect();
    let target = Target::Group(Arc::clone(&nodes[0]));
    measure(&format!("{name} 3 replicas"), &target, &engines, shape).await;
    for node in &nodes {
        node.raft().shutdown().await?;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 12)]
async fn main() -> Result<(), Box<dyn Error>> {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let shape = (arg(1, 5_000), arg(2, 10_000), arg(3, 8));
    println!(
        "YCSB A, {} records of {VALUE_SIZE} B, {} ops, {} clients, SyncPolicy::Always; write amp = \
         bytes written by each engine's storage seam / bytes of keys and values updated",
        shape.0, shape.1, shape.2
    );
    let root = tempfile::tempdir_in(std::env::current_dir()?)?;
    for name in ["bitcask", "lsm"] {
        let engine = open(name, &root.path().join(format!("{name}-single")))?;
        let target = Target::Single(Arc::clone(&engine));
        measure(&format!("{name} single node"), &target, &[engine], shape).await;
        group(name, root.path(), shape).await?;
    }
    Ok(())
}
