//! The memtable: recent writes, sorted by internal key, readable while written.
//!
//! A `BTreeSet` of 24-byte slots behind a `parking_lot::RwLock` rather than a lock-free skiplist:
//! crossbeam-skiplist 0.1.3 leaks every node a range iteration visits (upstream issue 1178), and
//! scans visit every node; and a skiplist's every step at a 64 MiB memtable is a cache miss (an
//! arena skiplist was tried and reverted: fills 27 to 32 % slower). Writers already serialise on
//! the WAL, so a write lock per batch costs little. Scans never hold the lock for long: they copy
//! a bounded run of slots under the read lock and resume after the last one. That is consistent
//! without holding the lock, because every entry carries its sequence number and a scan ignores
//! entries newer than its snapshot.
//!
//! Keys and values are copied into an arena of chunks (4 KiB doubling to 1 MiB; an entry over
//! 128 KiB gets its own) as `varint(key length) | varint(value length) | internal key | value`.
//! A slot is the user key's first 16 bytes and a pointer to its entry (`arena.rs`, the crate's
//! one `unsafe` module, with its safety argument): the tree compares heads inside its nodes and
//! reads the arena only on a tie. At 24 bytes a slot is half the earlier `head + Bytes` slot, so
//! a memtable of the same budget holds about 15 % more 16-byte-key, 100-byte-value entries, and
//! flushes are fewer and larger (less write amplification). A scan keeps the store's `Arc` and
//! reads its slots' bytes in place; values handed to readers and scans are copies.
//!
//! Charged per entry ([`Memtable::approximate_bytes`], which decides rotation): its arena bytes,
//! the free tail of a chunk given up to start the next one, and its slot ([`ENTRY_OVERHEAD`]).
//! Not charged: the slack of partly filled tree nodes, or the chunk list. Measured by a counting
//! allocator at 200 k entries of 16-byte keys, the tree's real cost is about 39 bytes per entry
//! for a random fill and 49 for an ascending one (`std` splits a full node at the right edge
//! 6 / 5, so sequential inserts leave leaves about half full): the memtable's real memory is
//! 1.13x (100-byte values, random) to 1.5x (empty values, ascending) what it charges. An insert
//! that replaces an entry of the same internal key (recovery only) is charged again in full
//! and its first bytes are never uncharged: an over-charge, the safe direction.
//!
//! Dropping the last `Arc<Memtable>` (after its flush is committed and the last reader is done)
//! frees every node and every chunk: nothing is leaked.

mod arena;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
#[cfg(test)]
use engine_api::BatchOp;
use engine_api::Result;

use self::arena::{Cursor, SLOT_BYTES, Store};
use crate::iter::InternalIterator;
use crate::key::{self, Kind, SeqNo};
use crate::op::AsOp;

/// Bytes charged per entry on top of its arena bytes: its tree slot.
const ENTRY_OVERHEAD: usize = SLOT_BYTES;

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
    store: Arc<Store>,
    bytes: AtomicUsize,
}

impl Memtable {
    pub(crate) fn new() -> Self {
        Memtable {
            store: Arc::default(),
            bytes: AtomicUsize::new(0),
        }
    }

    /// Inserts the operations of one batch, numbered from `first_seq`, under one write lock.
    pub(crate) fn insert_batch<T: AsOp>(&self, first_seq: SeqNo, ops: &[T]) {
        let mut added = 0;
        let mut tree = self.store.write();
        for (seq, op) in (first_seq..).zip(ops) {
            let op = op.as_op();
            added += tree.insert(op.key, key::trailer_bytes(seq, op.kind), op.value);
            added += ENTRY_OVERHEAD;
        }
        drop(tree);
        self.bytes.fetch_add(added, Ordering::Relaxed);
    }

    /// The newest version of `user` with a sequence number at most `seq`.
    #[cfg(test)]
    pub(crate) fn get(&self, user: &[u8], seq: SeqNo) -> Option<Lookup> {
        self.get_at(&key::seek_key(user, seq))
    }

    /// The newest version at or after `seek` (a [`key::seek_key`]) of the same user key. A
    /// read builds its seek key once for every memtable and table it probes.
    pub(crate) fn get_at(&self, seek: &[u8]) -> Option<Lookup> {
        let user = key::user_key(seek);
        self.store
            .find(seek, |ikey, value| {
                let parsed = key::parse(ikey)?;
                if parsed.user != user {
                    return None;
                }
                Some(match parsed.kind {
                    // Copied out: the arena lives only as long as the memtable.
                    Kind::Put => Lookup::Value(Bytes::copy_from_slice(value)),
                    Kind::Delete => Lookup::Deleted,
                })
            })
            .flatten()
    }

    /// Approximate memory held, in bytes.
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.store.len()
    }
}

/// An iterator over a memtable in internal-key order that copies bounded runs of slots. It
/// holds the memtable alive (an `Arc`), never its lock.
pub(crate) struct MemtableIter {
    _mem: Arc<Memtable>,
    cursor: Cursor,
}

impl MemtableIter {
    pub(crate) fn new(mem: Arc<Memtable>) -> Self {
        MemtableIter {
            cursor: Cursor::new(Arc::clone(&mem.store)),
            _mem: mem,
        }
    }

    /// The current value, borrowed (empty when not valid).
    pub(crate) fn value_slice(&self) -> &[u8] {
        self.cursor.entry().1
    }
}

impl InternalIterator for MemtableIter {
    fn valid(&self) -> bool {
        self.cursor.valid()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.cursor.seek_to_first();
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.cursor.seek(target);
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        self.cursor.next();
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.cursor.entry().0
    }

    /// A copy: this is what scans hand to users, and the arena lives only as long as the
    /// memtable (see [`MemtableIter::value_slice`] for the flush's borrowed view).
    fn value(&self) -> Bytes {
        Bytes::copy_from_slice(self.value_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::arena::LARGE_ENTRY;
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
    fn long_keys_keep_their_length_beside_them() {
        let m = Arc::new(Memtable::new());
        let keys = [
            vec![b'a'; 119],
            vec![b'b'; 120],
            vec![b'c'; 300],
            vec![b'd'; engine_api::MAX_KEY_LEN],
        ];
        for (i, k) in (1u64..).zip(&keys) {
            let value = format!("v{i}").into_bytes();
            m.insert_batch(
                i,
                &[BatchOp::Put {
                    key: k.clone(),
                    value,
                }],
            );
        }
        for (i, k) in (1u64..).zip(&keys) {
            let want = Bytes::from(format!("v{i}"));
            assert_eq!(m.get(k, 9), Some(Lookup::Value(want)), "{} bytes", k.len());
        }
        let mut it = MemtableIter::new(Arc::clone(&m));
        it.seek_to_first().unwrap();
        for k in &keys {
            assert_eq!(key::user_key(it.key()), &k[..]);
            it.next().unwrap();
        }
        assert!(!it.valid());
    }

    #[test]
    fn arena_entries_survive_chunk_changes_and_are_charged() {
        let m = Memtable::new();
        let big = vec![7u8; LARGE_ENTRY + 1];
        let mut stored = 0;
        for i in 0..3000u64 {
            let value = if i % 500 == 0 {
                big.clone()
            } else {
                vec![u8::try_from(i % 251).unwrap(); usize::try_from(i % 300).unwrap()]
            };
            let key = format!("k{i:05}").into_bytes();
            stored += key.len() + key::TRAILER_LEN + value.len();
            m.insert_batch(i + 1, &[BatchOp::Put { key, value }]);
        }
        for i in 0..3000u64 {
            let Some(Lookup::Value(v)) = m.get(format!("k{i:05}").as_bytes(), u64::MAX) else {
                panic!("k{i:05} missing");
            };
            let want_len = if i % 500 == 0 {
                big.len()
            } else {
                usize::try_from(i % 300).unwrap()
            };
            assert_eq!(v.len(), want_len, "k{i:05}");
            assert!(v.iter().all(|&b| b == v.first().copied().unwrap_or(0)));
        }
        assert!(m.approximate_bytes() >= stored + 3000 * ENTRY_OVERHEAD);
        // Abandoned chunk tails are bounded: less than one largest entry per chunk.
        assert!(m.approximate_bytes() < stored + 3000 * ENTRY_OVERHEAD + stored / 4);
    }

    #[test]
    fn values_handed_out_pin_no_arena_chunk() {
        let m = Arc::new(Memtable::new());
        m.insert_batch(1, &[put("a", "one"), put("b", "two")]);
        let Some(Lookup::Value(v)) = m.get(b"a", 9) else {
            panic!("a missing");
        };
        assert!(v.is_unique(), "a get's value shares the arena chunk");
        let mut it = MemtableIter::new(Arc::clone(&m));
        it.seek_to_first().unwrap();
        let scanned = it.value();
        assert!(scanned.is_unique(), "a scan's value shares the arena chunk");
        drop((it, m));
        assert_eq!((v, scanned), (Bytes::from("one"), Bytes::from("one")));
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

    /// Every entry a full scan from the start yields: (user key, value).
    fn scan_all(m: &Arc<Memtable>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut it = MemtableIter::new(Arc::clone(m));
        it.seek_to_first().unwrap();
        let mut out = Vec::new();
        while it.valid() {
            out.push((key::user_key(it.key()).to_vec(), it.value_slice().to_vec()));
            it.next().unwrap();
        }
        out
    }

    /// Keys that tie on their 16-byte head: equal first 16 bytes, differing only after, or
    /// only by trailing zero bytes; plus the empty key and a long one.
    fn tied_keys() -> Vec<Vec<u8>> {
        let p = b"0123456789abcdef".to_vec();
        let with = |tail: &[u8]| [&p[..], tail].concat();
        vec![
            Vec::new(),
            b"0123456789abcde".to_vec(),
            p.clone(),
            with(b"\0"),
            with(b"\0\0"),
            with(b"a"),
            with(b"a\0"),
            with(b"b"),
            with(&[b'z'; 500]),
            with(&[0xff; 17]),
        ]
    }

    #[test]
    fn keys_that_tie_on_their_head_are_ordered_and_found_in_full() {
        let keys = tied_keys();
        let m = Arc::new(Memtable::new());
        // Inserted in reverse, each with two versions, so every insert lands beside a tie.
        for (i, k) in (1u64..).zip(keys.iter().rev()) {
            let old = BatchOp::Put {
                key: k.clone(),
                value: b"old".to_vec(),
            };
            let new = BatchOp::Put {
                key: k.clone(),
                value: format!("v{}", k.len()).into_bytes(),
            };
            m.insert_batch(i * 2, &[old, new]);
        }
        for k in &keys {
            let want = Bytes::from(format!("v{}", k.len()));
            assert_eq!(m.get(k, u64::MAX >> 8), Some(Lookup::Value(want)), "{k:?}");
        }
        let missing = [&b"0123456789abcdef"[..], b"c"].concat();
        assert_eq!(m.get(&missing, u64::MAX >> 8), None);
        let scanned: Vec<Vec<u8>> = scan_all(&m).into_iter().map(|(k, _)| k).collect();
        let want: Vec<Vec<u8>> = keys.iter().flat_map(|k| [k.clone(), k.clone()]).collect();
        assert_eq!(
            scanned, want,
            "tied keys in user-key order, newest version first"
        );
    }

    #[test]
    fn scans_cross_chunks_and_large_entries_in_order() {
        let m = Arc::new(Memtable::new());
        let mut want = Vec::new();
        // Values up to 4 KiB fill the first chunks within a few entries; every 97th is larger
        // than LARGE_ENTRY and lives in an allocation of its own.
        for i in 0..2000u32 {
            let k = format!("key-{:08}-with-a-long-tail", (i * 7919) % 2000).into_bytes();
            let len = if i % 97 == 0 {
                LARGE_ENTRY + 1
            } else {
                (i as usize * 37) % 4096
            };
            let v = vec![u8::try_from(i % 251).unwrap(); len];
            m.insert_batch(
                u64::from(i) + 1,
                &[BatchOp::Put {
                    key: k.clone(),
                    value: v.clone(),
                }],
            );
            want.push((k, v));
        }
        want.sort();
        assert_eq!(scan_all(&m), want);
        for (k, v) in want.iter().step_by(13) {
            assert_eq!(
                m.get(k, u64::MAX >> 8),
                Some(Lookup::Value(Bytes::from(v.clone())))
            );
        }
    }

    #[test]
    fn a_scan_running_while_inserts_go_on_sees_every_earlier_entry_intact() {
        let m = Arc::new(Memtable::new());
        let key_of = |i: u64| format!("k{:06}", (i * 7919) % 100_000).into_bytes();
        let value_of = |i: u64| i.to_le_bytes().repeat(4);
        for i in 0..5000u64 {
            m.insert_batch(
                i + 1,
                &[BatchOp::Put {
                    key: key_of(i),
                    value: value_of(i),
                }],
            );
        }
        let writer = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 5000..60_000u64 {
                    m.insert_batch(
                        i + 1,
                        &[BatchOp::Put {
                            key: key_of(i),
                            value: value_of(i),
                        }],
                    );
                }
            })
        };
        let mut it = MemtableIter::new(Arc::clone(&m));
        it.seek_to_first().unwrap();
        let (mut early, mut prev) = (0, Vec::new());
        while it.valid() {
            let parsed = key::parse(it.key()).unwrap();
            let i = parsed.seq - 1;
            assert_eq!(
                (parsed.user, it.value_slice()),
                (&key_of(i)[..], &value_of(i)[..])
            );
            assert!(key::compare(&prev, it.key()).is_lt(), "out of order");
            prev = it.key().to_vec();
            early += usize::from(parsed.seq <= 5000);
            it.next().unwrap();
        }
        writer.join().unwrap();
        assert_eq!(
            early, 5000,
            "a scan missed entries written before it started"
        );
        assert_eq!(m.len(), 60_000);
    }
}
