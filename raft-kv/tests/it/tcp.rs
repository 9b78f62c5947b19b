//! Three replicas on loopback TCP: the client API over the wire, and a client that follows
//! the group to a new leader after the old one is gone.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine_api::SimStorage;
use openraft::BasicNode;
use raft_kv::network::tcp::{TcpClient, TcpNetwork, serve};
use raft_kv::{KvNode, default_config};
use tokio::net::TcpListener;

use crate::cluster::run;
use crate::engines::{Kind, Mode, open};
use crate::per_engine;

/// Starts three replicas on loopback ports; returns them with their server tasks.
async fn start(
    kind: Kind,
) -> (
    BTreeMap<u64, (Arc<KvNode>, tokio::task::JoinHandle<()>)>,
    BTreeMap<u64, String>,
) {
    let mut listeners = BTreeMap::new();
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        members.insert(id, BasicNode::new(addr));
        listeners.insert(id, listener);
    }
    let mut nodes = BTreeMap::new();
    for (id, listener) in listeners {
        let engine = open(kind, Mode::Always, &SimStorage::new());
        let durability = Mode::Always.durability();
        let node = KvNode::start(id, engine, durability, default_config(1_000), TcpNetwork).await;
        let node = Arc::new(node.expect("start replica"));
        let server = tokio::spawn({
            let node = Arc::clone(&node);
            async move {
                let _ = serve(listener, node).await;
            }
        });
        nodes.insert(id, (node, server));
    }
    nodes[&1]
        .0
        .raft()
        .initialize(members.clone())
        .await
        .expect("initialize");
    let addrs = members.into_iter().map(|(id, n)| (id, n.addr)).collect();
    (nodes, addrs)
}

fn over_tcp_the_client_follows_the_leader(kind: Kind) {
    run(async {
        let (mut nodes, addrs) = start(kind).await;
        let mut client = TcpClient::new(addrs);
        client.put(b"apple", b"red").await.expect("put");
        client.put(b"pear", b"green").await.expect("put");
        client.delete(b"pear").await.expect("delete");
        assert_eq!(
            client.get(b"apple").await.expect("get").as_deref(),
            Some(&b"red"[..])
        );
        assert_eq!(client.get(b"pear").await.expect("get"), None);

        let leader = nodes[&1].0.raft().current_leader().await.expect("a leader");
        let (node, server) = nodes.remove(&leader).expect("leader runs");
        server.abort();
        node.raft().shutdown().await.expect("shutdown");
        client
            .put(b"plum", b"purple")
            .await
            .expect("put after the leader's loss");
        assert_eq!(
            client.get(b"apple").await.expect("get").as_deref(),
            Some(&b"red"[..])
        );
        assert_eq!(
            client.get(b"plum").await.expect("get").as_deref(),
            Some(&b"purple"[..])
        );
        for (node, server) in nodes.into_values() {
            server.abort();
            node.raft().shutdown().await.expect("shutdown");
        }
    });
}

per_engine! {
    over_tcp_the_client_follows_the_leader => super::over_tcp_the_client_follows_the_leader;
}
