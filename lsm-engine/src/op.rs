//! One write operation as the write path sees it: borrowed, so a single put reaches the WAL and
//! the memtable without a `WriteBatch` being built for it (three allocations and three frees per
//! put, a fifth of its instructions: `docs/results/profiles/`).

use engine_api::BatchOp;

use crate::key::Kind;

/// A put (`kind == Put`, with its value) or a delete (`value` empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Op<'a> {
    pub(crate) kind: Kind,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
}

impl<'a> Op<'a> {
    pub(crate) fn put(key: &'a [u8], value: &'a [u8]) -> Self {
        Op {
            kind: Kind::Put,
            key,
            value,
        }
    }

    pub(crate) fn delete(key: &'a [u8]) -> Self {
        Op {
            kind: Kind::Delete,
            key,
            value: &[],
        }
    }

    /// The user bytes the operation carries (what the engine's counters charge).
    pub(crate) fn user_bytes(&self) -> usize {
        self.key.len() + self.value.len()
    }
}

/// Anything the write path can take as an operation: a batch's owned ops or borrowed ones.
pub(crate) trait AsOp {
    fn as_op(&self) -> Op<'_>;
}

impl AsOp for Op<'_> {
    fn as_op(&self) -> Op<'_> {
        *self
    }
}

impl AsOp for BatchOp {
    fn as_op(&self) -> Op<'_> {
        match self {
            BatchOp::Put { key, value } => Op::put(key, value),
            BatchOp::Delete { key } => Op::delete(key),
        }
    }
}
