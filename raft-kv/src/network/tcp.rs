//! Replicas and clients over TCP: one length-prefixed postcard frame per request and reply.
//!
//! Frame: `len (u32 LE) | postcard bytes`. A connection carries one request at a time.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{ClientError, KvNode, TypeConfig};

/// Largest frame accepted: a snapshot travels in chunks, so 64 MiB is ample.
const MAX_FRAME: u32 = 64 << 20;

/// A request, from a peer or a client.
#[derive(Serialize, Deserialize)]
enum Message {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
    Get { key: Vec<u8> },
}

/// A reply to a [`Message`].
#[derive(Serialize, Deserialize)]
enum Reply {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Client(Result<Option<Vec<u8>>, ClientError>),
}

async fn write_frame<T: Serialize>(stream: &mut TcpStream, value: &T) -> io::Result<()> {
    let bytes = postcard::to_allocvec(value).map_err(io::Error::other)?;
    let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
    stream.write_all(&len.to_le_bytes()).await?;
    stream.write_all(&bytes).await
}

async fn read_frame<T: DeserializeOwned>(stream: &mut TcpStream) -> io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut bytes = vec![0u8; len as usize];
    stream.read_exact(&mut bytes).await?;
    postcard::from_bytes(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Serves peers and clients of `node` on `listener` until the listener fails.
///
/// # Errors
/// The listener's accept error.
pub async fn serve(listener: TcpListener, node: Arc<KvNode>) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(serve_connection(stream, Arc::clone(&node)));
    }
}

async fn serve_connection(mut stream: TcpStream, node: Arc<KvNode>) {
    while let Ok(message) = read_frame::<Message>(&mut stream).await {
        let reply = handle(&node, message).await;
        if write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

async fn handle(node: &KvNode, message: Message) -> Reply {
    let raft = node.raft();
    match message {
        Message::AppendEntries(rpc) => Reply::AppendEntries(raft.append_entries(rpc).await),
        Message::InstallSnapshot(rpc) => Reply::InstallSnapshot(raft.install_snapshot(rpc).await),
        Message::Vote(rpc) => Reply::Vote(raft.vote(rpc).await),
        Message::Put { key, value } => Reply::Client(node.put(&key, &value).await.map(|()| None)),
        Message::Delete { key } => Reply::Client(node.delete(&key).await.map(|()| None)),
        Message::Get { key } => Reply::Client(node.get(&key).await),
    }
}

/// Connects replicas to each other by the address in their [`BasicNode`].
#[derive(Clone, Default)]
pub struct TcpNetwork;

impl RaftNetworkFactory<TypeConfig> for TcpNetwork {
    type Network = TcpConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> TcpConnection {
        TcpConnection {
            target,
            addr: node.addr.clone(),
            stream: None,
        }
    }
}

/// A connection to one peer, opened on first use and again after any failure.
pub struct TcpConnection {
    target: u64,
    addr: String,
    stream: Option<TcpStream>,
}

type RpcError<E> = RPCError<u64, BasicNode, RaftError<u64, E>>;

impl TcpConnection {
    /// Sends `message` and reads the reply; an I/O failure drops the connection.
    async fn call<E>(&mut self, message: &Message) -> Result<Reply, RpcError<E>>
    where
        E: std::error::Error,
    {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
            stream
                .set_nodelay(true)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        let result = match write_frame(stream, message).await {
            Ok(()) => read_frame(stream).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            self.stream = None;
            RPCError::Network(NetworkError::new(&e))
        })
    }

    fn remote<T, E: std::error::Error>(
        &self,
        result: Result<T, RaftError<u64, E>>,
    ) -> Result<T, RpcError<E>> {
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn unexpected<E: std::error::Error>() -> RpcError<E> {
    RPCError::Network(NetworkError::new(&io::Error::other(
        "reply of the wrong kind",
    )))
}

impl RaftNetwork<TypeConfig> for TcpConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcError<openraft::error::Infallible>> {
        match self.call(&Message::AppendEntries(rpc)).await? {
            Reply::AppendEntries(r) => self.remote(r),
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcError<InstallSnapshotError>> {
        match self.call(&Message::InstallSnapshot(rpc)).await? {
            Reply::InstallSnapshot(r) => self.remote(r),
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcError<openraft::error::Infallible>> {
        match self.call(&Message::Vote(rpc)).await? {
            Reply::Vote(r) => self.remote(r),
            _ => Err(unexpected()),
        }
    }

    fn backoff(&self) -> openraft::network::Backoff {
        super::short_backoff()
    }
}

/// A client of a group over TCP: it sends each call to the replica it believes leads and
/// follows [`ClientError::ForwardToLeader`] hints.
pub struct TcpClient {
    addrs: BTreeMap<u64, String>,
    leader: u64,
    streams: BTreeMap<u64, TcpStream>,
}

impl TcpClient {
    /// A client of the replicas at `addrs` (id to `host:port`).
    ///
    /// # Panics
    /// If `addrs` is empty.
    pub fn new(addrs: BTreeMap<u64, String>) -> TcpClient {
        let leader = *addrs.keys().next().expect("at least one replica");
        TcpClient {
            addrs,
            leader,
            streams: BTreeMap::new(),
        }
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// As [`KvNode::put`], or [`ClientError::Network`] if no leader answers.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        let message = Message::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        self.call(&message).await.map(drop)
    }

    /// Removes `key`.
    ///
    /// # Errors
    /// As [`TcpClient::put`].
    pub async fn delete(&mut self, key: &[u8]) -> Result<(), ClientError> {
        self.call(&Message::Delete { key: key.to_vec() })
            .await
            .map(drop)
    }

    /// A linearizable read through the leader.
    ///
    /// # Errors
    /// As [`TcpClient::put`].
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        self.call(&Message::Get { key: key.to_vec() }).await
    }

    /// Tries the believed leader, follows hints, and tries every replica in turn while the
    /// group elects one or a replica cannot serve; gives up after about five seconds. A write
    /// retried this way may be applied twice, which a put or a delete allows.
    async fn call(&mut self, message: &Message) -> Result<Option<Vec<u8>>, ClientError> {
        let mut last = ClientError::Network("no replica answered".to_string());
        for _ in 0..100 {
            match self.call_once(self.leader, message).await {
                Err(ClientError::ForwardToLeader { leader: Some(l) }) => self.leader = l,
                // A replica whose Raft stopped (crashed storage, shut down) may still hold
                // connections open; the others may serve.
                Err(
                    e @ (ClientError::ForwardToLeader { .. }
                    | ClientError::Network(_)
                    | ClientError::Raft(_)),
                ) => {
                    last = e;
                    self.next_replica();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
        Err(last)
    }

    fn next_replica(&mut self) {
        let after = self.addrs.range(self.leader + 1..).next();
        let next = after.or_else(|| self.addrs.iter().next());
        self.leader = *next.expect("at least one replica").0;
    }

    async fn call_once(
        &mut self,
        id: u64,
        message: &Message,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let net = |e: io::Error| ClientError::Network(e.to_string());
        if !self.streams.contains_key(&id) {
            let stream = TcpStream::connect(&self.addrs[&id]).await.map_err(net)?;
            stream.set_nodelay(true).map_err(net)?;
            self.streams.insert(id, stream);
        }
        let stream = self.streams.get_mut(&id).expect("connected above");
        let answer = match write_frame(stream, message).await {
            Ok(()) => read_frame::<Reply>(stream).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(Reply::Client(result)) => result,
            Ok(_) => Err(ClientError::Network("reply of the wrong kind".to_string())),
            Err(e) => {
                self.streams.remove(&id);
                Err(net(e))
            }
        }
    }
}
