//! Three replicas on loopback TCP ports, each on its own engine in a temporary directory;
//! a client writes, reads linearizably through the leader, deletes, and everything exits.
//!
//! ```text
//! cargo run --release -p raft-kv --example cluster            # Bitcask
//! cargo run --release -p raft-kv --example cluster -- lsm     # the LSM
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{CommonOptions, Engine};
use lsm_engine::{LsmEngine, LsmOptions};
use openraft::BasicNode;
use raft_kv::network::tcp::{TcpClient, TcpNetwork, serve};
use raft_kv::{Durability, KvNode, default_config};
use tokio::net::TcpListener;

/// Opens the engine named `name` in `dir` under `SyncPolicy::Always` (the default).
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
        _ => Arc::new(BitcaskEngine::open(
            dir,
            BitcaskOptions {
                common,
                ..BitcaskOptions::default()
            },
        )?),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Box<dyn Error>> {
    let engine_name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bitcask".to_string());
    let root = tempfile::tempdir()?;
    let mut listeners = BTreeMap::new();
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        members.insert(id, BasicNode::new(listener.local_addr()?.to_string()));
        listeners.insert(id, listener);
    }
    let mut nodes = Vec::new();
    for (id, listener) in listeners {
        let engine = open(&engine_name, &root.path().join(format!("replica-{id}")))?;
        let config = default_config(1_000);
        let node = KvNode::start(
            id,
            engine,
            Durability::EngineSyncsEveryWrite,
            config,
            TcpNetwork,
        )
        .await?;
        let node = Arc::new(node);
        tokio::spawn(serve(listener, Arc::clone(&node)));
        println!(
            "replica {id} ({engine_name}) listening on {}",
            members[&id].addr
        );
        nodes.push(node);
    }
    nodes[0].raft().initialize(members.clone()).await?;

    let addrs = members
        .iter()
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect();
    let mut client = TcpClient::new(addrs);
    for (key, value) in [
        ("apple", "red"),
        ("banana", "yellow"),
        ("cherry", "dark red"),
    ] {
        client.put(key.as_bytes(), value.as_bytes()).await?;
        println!("put {key} = {value}");
    }
    client.delete(b"banana").await?;
    println!("delete banana");
    for key in ["apple", "banana", "cherry"] {
        let value = client.get(key.as_bytes()).await?;
        let shown = value.map(|v| String::from_utf8_lossy(&v).into_owned());
        println!("get {key} -> {shown:?} (linearizable, through the leader)");
    }
    let leader = nodes[0].raft().current_leader().await;
    println!("leader: replica {leader:?}");

    assert_eq!(client.get(b"apple").await?.as_deref(), Some(&b"red"[..]));
    assert_eq!(client.get(b"banana").await?, None);
    for node in &nodes {
        node.raft().shutdown().await?;
    }
    println!("all replicas stopped");
    Ok(())
}
