//! The write-ahead log: every write batch is appended here as one checksummed record before it
//! reaches the memtable. Spec: `docs/formats/wal.md`.
//!
//! One WAL per memtable. At rotation the old WAL is synced before the new one takes writes, so
//! every WAL but the newest is complete on disk; damage in those is corruption, while a bad record
//! in the newest is the torn tail of a write that was never acknowledged as durable.

pub(crate) mod format;
mod reader;
mod writer;

pub(crate) use reader::{WalContents, read_wal};
pub(crate) use writer::WalWriter;
