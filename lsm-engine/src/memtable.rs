//! The memtable: recent writes, sorted by internal key, readable while written.
//!
//! A `BTreeMap` behind a `parking_lot::RwLock` rather than a lock-free skiplist: crossbeam-skiplist
//! 0.1.3 leaks every node a range iteration visits (upstream issue 1178), and scans visit every
//! node. Writers already serialise on the WAL, so a write lock per batch costs little. Scans never
//! hold the lock for long: they copy a bounded chunk of entries under the read lock and resume
//! after the last key they copied. That is consistent without holding the lock, because every
//! entry carries its sequence number and a scan ignores entries newer than its snapshot.
//!
//! Dropping the last `Arc<Memtable>` (after its flush is committed and the last reader is done)
//! frees every node: `BTreeMap` owns its nodes, nothing is leaked.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use engine_api::{BatchOp, Result};
use parking_lot::RwLock;

use crate::iter::InternalIterator;
use crate::key::{self, Kind, OrdKey, SeqNo};

/// Bytes charged per entry on top of key and value: tree node share, `Bytes` headers, trailer.
const ENTRY_OVERHEAD: usize = 64;

/// Entries a scan copies per visit to the lock.
const CHUNK: usize = 256;

/// What a point lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The newest visible version is a value.
    Value(Bytes),
    /// The newest visible version is a tombstone.
    Deleted,
}

/// One memtable. See the module documentation.
#[derive(Debug)]
pub(crate) struct Memtable {
    map: RwLock<BTreeMap<OrdKey, Bytes>>,
    bytes: AtomicUsize,
}

impl Memtable {
    pub(crate) fn new() -> Self {
        Memtable {
            map: RwLock::new(BTreeMap::new()),
            bytes: AtomicUsize::new(0),
        }
    }

    /// Inserts the operations of one batch, numbered from `first_seq`, under one write lock.
    pub(crate) fn insert_batch(&self, first_seq: SeqNo, ops: &[BatchOp]) {
        let mut added = 0;
        let mut map = self.map.write();
        for (seq, op) in (first_seq..).zip(ops) {
            let (kind, value) = match op {
                BatchOp::Put { value, .. } => (Kind::Put, Bytes::copy_from_slice(value)),
                BatchOp::Delete { .. } => (Kind::Delete, Bytes::new()),
            };
            let ikey = Bytes::from(key::encode(op.key(), seq, kind));
            added += ikey.len() + value.len() + ENTRY_OVERHEAD;
            map.insert(OrdKey(ikey), value);
        }
        drop(map);
        self.bytes.fetch_add(added, Ordering::Relaxed);
    }

    /// The newest version of `user` with a sequence number at most `seq`.
    #[cfg(test)]
    pub(crate) fn get(&self, user: &[u8], seq: SeqNo) -> Option<Lookup> {
        self.get_at(&OrdKey(Bytes::from(key::seek_key(user, seq))))
    }

    /// The newest version at or after `seek` (a [`key::seek_key`]) of the same user key. A
    /// read builds its seek key once for every memtable and table it probes.
    pub(crate) fn get_at(&self, seek: &OrdKey) -> Option<Lookup> {
        let user = key::user_key(&seek.0);
        let map = self.map.read();
        let (k, v) = map
            .range((Bound::Included(seek), Bound::Unbounded))
            .next()?;
        let parsed = key::parse(&k.0)?;
        if parsed.user != user {
            return None;
        }
        Some(match parsed.kind {
            Kind::Put => Lookup::Value(v.clone()),
            Kind::Delete => Lookup::Deleted,
        })
    }

    /// Approximate memory held, in bytes.
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.read().len()
    }

    /// Up to `max` entries from `from` on, copied out under the read lock.
    fn chunk(&self, from: Bound<OrdKey>, max: usize) -> Vec<(Bytes, Bytes)> {
        let map = self.map.read();
        map.range((from, Bound::Unbounded))
            .take(max)
            .map(|(k, v)| (k.0.clone(), v.clone()))
            .collect()
    }
}

/// An iterator over a memtable in internal-key order that copies bounded chunks. It holds the
/// memtable alive (an `Arc`), never its lock.
pub(crate) struct MemtableIter {
    mem: std::sync::Arc<Memtable>,
    buf: Vec<(Bytes, Bytes)>,
    pos: usize,
    exhausted: bool,
}

impl MemtableIter {
    pub(crate) fn new(mem: std::sync::Arc<Memtable>) -> Self {
        MemtableIter {
            mem,
            buf: Vec::new(),
            pos: 0,
            exhausted: true,
        }
    }

    fn fill(&mut self, from: Bound<OrdKey>) {
        self.buf = self.mem.chunk(from, CHUNK);
        self.pos = 0;
        self.exhausted = self.buf.len() < CHUNK;
    }
}

impl InternalIterator for MemtableIter {
    fn valid(&self) -> bool {
        self.pos < self.buf.len()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.fill(Bound::Unbounded);
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.fill(Bound::Included(OrdKey(Bytes::copy_from_slice(target))));
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        self.pos += 1;
        if self.pos >= self.buf.len()
            && !self.exhausted
            && let Some((last, _)) = self.buf.last()
        {
            let from = Bound::Excluded(OrdKey(last.clone()));
            self.fill(from);
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.buf.get(self.pos).map_or(&[], |(k, _)| k.as_ref())
    }

    fn value(&self) -> Bytes {
        self.buf
            .get(self.pos)
            .map_or_else(Bytes::new, |(_, v)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn put(k: &str, v: &str) -> BatchOp {
        BatchOp::Put {
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn lookups_respect_sequence_numbers() {
        let m = Memtable::new();
        m.insert_batch(1, &[put("a", "1")]);
        m.insert_batch(2, &[BatchOp::Delete { key: b"a".to_vec() }]);
        m.insert_batch(3, &[put("a", "3"), put("b", "x")]);
        assert_eq!(m.get(b"a", 1), Some(Lookup::Value(Bytes::from("1"))));
        assert_eq!(m.get(b"a", 2), Some(Lookup::Deleted));
        assert_eq!(m.get(b"a", 99), Some(Lookup::Value(Bytes::from("3"))));
        assert_eq!(m.get(b"b", 3), None);
        assert_eq!(m.get(b"c", 99), None);
    }

    #[test]
    fn chunked_iteration_sees_every_entry_in_order() {
        let m = Arc::new(Memtable::new());
        for i in 0..1000u64 {
            m.insert_batch(i + 1, &[put(&format!("k{:04}", i % 700), "v")]);
        }
        let mut it = MemtableIter::new(m.clone());
        it.seek_to_first().unwrap();
        let mut n = 0;
        let mut prev: Option<Vec<u8>> = None;
        while it.valid() {
            if let Some(p) = &prev {
                assert_eq!(key::compare(p, it.key()), std::cmp::Ordering::Less);
            }
            prev = Some(it.key().to_vec());
            n += 1;
            it.next().unwrap();
        }
        assert_eq!(n, 1000);
        it.seek(&key::seek_key(b"k0699", u64::MAX)).unwrap();
        assert_eq!(key::user_key(it.key()), b"k0699");
    }
}
