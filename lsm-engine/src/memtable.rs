//! The memtable: recent writes, sorted by internal key, readable while written.
//!
//! An arena skiplist ([`skiplist`]) behind a `parking_lot::RwLock` rather than a lock-free
//! one: crossbeam-skiplist 0.1.3 leaks every node a range iteration visits (upstream issue
//! 1178), and scans visit every node. Writers already serialise on the WAL, so a write lock per
//! batch costs little. Scans never hold the lock for long: they copy a bounded chunk of entries
//! under the read lock and resume after the last key they copied. That is consistent without
//! holding the lock, because every entry carries its sequence number and a scan ignores
//! entries newer than its snapshot.
//!
//! Density is the point of the arena: every entry is one run of arena bytes (its skiplist
//! node, key and value), about 11 bytes beyond the key, trailer and value for an entry of
//! 16 + 100 bytes, where the `BTreeSet` this replaces cost a 48-byte slot plus the slack of
//! half-filled tree nodes. A memtable of the same size holds about a quarter more entries, so
//! flushed L0 tables are bigger and L0 -> base compactions run less often (`docs/lsm.md`,
//! "Memtable"). Dropping the last `Arc<Memtable>` frees a chunk per megabyte.
//!
//! Values handed to readers and scans are copies: nothing outside the memtable refers to its
//! arena.

mod skiplist;

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
#[cfg(test)]
use engine_api::BatchOp;
use engine_api::Result;
use parking_lot::RwLock;

use crate::iter::InternalIterator;
use crate::key::{self, Kind, SeqNo};
use crate::op::AsOp;
use skiplist::{Seek, SkipList};

/// Entries a scan copies per visit to the lock.
const CHUNK: usize = 256;

/// Bytes a scan copies per visit to the lock (past them, the chunk ends after the entry that
/// crossed them).
const CHUNK_BYTES: usize = 256 << 10;

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
    list: RwLock<SkipList>,
    bytes: AtomicUsize,
}

impl Memtable {
    pub(crate) fn new() -> Self {
        Memtable {
            list: RwLock::new(SkipList::default()),
            bytes: AtomicUsize::new(0),
        }
    }

    /// Inserts the operations of one batch, numbered from `first_seq`, under one write lock.
    pub(crate) fn insert_batch<T: AsOp>(&self, first_seq: SeqNo, ops: &[T]) {
        let mut list = self.list.write();
        for (seq, op) in (first_seq..).zip(ops) {
            let op = op.as_op();
            list.insert(op.key, key::trailer_bytes(seq, op.kind), op.value);
        }
        self.bytes.store(list.charged(), Ordering::Relaxed);
    }

    /// The newest version of `user` with a sequence number at most `seq`.
    #[cfg(test)]
    pub(crate) fn get(&self, user: &[u8], seq: SeqNo) -> Option<Lookup> {
        self.get_at(&key::seek_key(user, seq))
    }

    /// The newest version at or after `seek` (a [`key::seek_key`]) of the same user key. A
    /// read builds its seek key once for every memtable and table it probes.
    pub(crate) fn get_at(&self, seek: &[u8]) -> Option<Lookup> {
        let list = self.list.read();
        let (ikey, value) = list.entry(list.first(Seek::AtOrAfter(seek))?);
        let parsed = key::parse(ikey)?;
        if parsed.user != key::user_key(seek) {
            return None;
        }
        Some(match parsed.kind {
            Kind::Put => Lookup::Value(Bytes::copy_from_slice(value)),
            Kind::Delete => Lookup::Deleted,
        })
    }

    /// Approximate memory held, in bytes.
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.list.read().len()
    }

    /// Copies entries from `from` on into `out` (cleared first), under the read lock: up to
    /// [`CHUNK`] entries, and no more once [`CHUNK_BYTES`] are copied. Returns whether the
    /// copy reached the end of the memtable.
    fn chunk(&self, from: Seek<'_>, out: &mut Copied) -> bool {
        out.clear();
        let list = self.list.read();
        let mut node = list.first(from);
        while let Some(n) = node {
            if out.len() >= CHUNK || out.bytes.len() >= CHUNK_BYTES {
                return false;
            }
            let (ikey, value) = list.entry(n);
            out.push(ikey, value);
            node = list.successor(n);
        }
        true
    }
}

/// Entries copied out of the arena: keys and values back to back in one buffer.
#[derive(Debug, Default)]
struct Copied {
    bytes: Vec<u8>,
    /// Per entry: where its key ends and where its value ends (it starts where the previous
    /// entry's value ends).
    ends: Vec<(usize, usize)>,
}

impl Copied {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn push(&mut self, ikey: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(ikey);
        let key_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.ends.push((key_end, self.bytes.len()));
    }

    /// Entry `i`'s key and value (empty when out of range).
    fn get(&self, i: usize) -> (&[u8], &[u8]) {
        let start = i
            .checked_sub(1)
            .and_then(|p| self.ends.get(p))
            .map_or(0, |e| e.1);
        let Some(&(key_end, end)) = self.ends.get(i) else {
            return (&[], &[]);
        };
        let part = |a: usize, b: usize| self.bytes.get(a..b).unwrap_or_default();
        (part(start, key_end), part(key_end, end))
    }
}

/// An iterator over a memtable in internal-key order that copies bounded chunks. It holds the
/// memtable alive (an `Arc`), never its lock.
pub(crate) struct MemtableIter {
    mem: std::sync::Arc<Memtable>,
    buf: Copied,
    /// The last key of the previous chunk, where the next one resumes.
    last: Vec<u8>,
    pos: usize,
    exhausted: bool,
}

impl MemtableIter {
    pub(crate) fn new(mem: std::sync::Arc<Memtable>) -> Self {
        MemtableIter {
            mem,
            buf: Copied::default(),
            last: Vec::new(),
            pos: 0,
            exhausted: true,
        }
    }

    /// The current value, borrowed (empty when not valid).
    pub(crate) fn value_slice(&self) -> &[u8] {
        self.buf.get(self.pos).1
    }

    fn fill(&mut self, from: Seek<'_>) {
        self.exhausted = self.mem.chunk(from, &mut self.buf);
        self.pos = 0;
    }
}

impl InternalIterator for MemtableIter {
    fn valid(&self) -> bool {
        self.pos < self.buf.len()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.fill(Seek::Start);
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.fill(Seek::AtOrAfter(target));
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        self.pos += 1;
        if self.pos >= self.buf.len() && !self.exhausted && self.buf.len() > 0 {
            self.last.clear();
            self.last
                .extend_from_slice(self.buf.get(self.buf.len() - 1).0);
            let MemtableIter { mem, buf, last, .. } = self;
            self.exhausted = mem.chunk(Seek::After(last), buf);
            self.pos = 0;
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.buf.get(self.pos).0
    }

    /// A copy: this is what scans hand to users (see [`MemtableIter::value_slice`] for the
    /// flush's borrowed view).
    fn value(&self) -> Bytes {
        Bytes::copy_from_slice(self.value_slice())
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
    fn an_entry_costs_about_eleven_bytes_beyond_its_key_and_value() {
        let m = Memtable::new();
        let n = 20_000u64;
        for i in 0..n {
            m.insert_batch(i + 1, &[put(&format!("key{i:013}"), &"v".repeat(100))]);
        }
        let payload = usize::try_from(n).unwrap() * (16 + key::TRAILER_LEN + 100);
        let per_entry = (m.approximate_bytes() - payload) / usize::try_from(n).unwrap();
        // Two key-length bytes, 1.33 six-byte pointers on average (the height inside the
        // first), one value-length byte; the abandoned chunk tails add a fraction of a byte.
        assert!(
            (10..=12).contains(&per_entry),
            "{per_entry} bytes per entry"
        );
    }

    #[test]
    fn nodes_order_as_internal_keys() {
        let users: [&[u8]; 14] = [
            b"a",
            b"a\0",
            b"a\0\0",
            b"ab",
            b"abcdefghijklmnop",
            b"abcdefghijklmnop\0",
            b"abcdefghijklmnoq",
            b"abcdefghijklmnopq",
            b"abcdefghijklmno",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            b"0000000000000012",
            b"0000000000000013",
            b"\0",
        ];
        let mut ikeys = Vec::new();
        for u in users {
            for (seq, kind) in [(1, Kind::Put), (7, Kind::Delete), (7, Kind::Put)] {
                ikeys.push((u, seq, kind, key::encode(u, seq, kind)));
            }
        }
        let mut list = SkipList::default();
        for (u, seq, kind, _) in ikeys.iter().rev() {
            list.insert(u, key::trailer_bytes(*seq, *kind), b"v");
        }
        ikeys.sort_by(|a, b| key::compare(&a.3, &b.3));
        let mut node = list.first(Seek::Start);
        for (_, _, _, want) in &ikeys {
            let n = node.expect("too few nodes");
            assert_eq!(list.entry(n).0, &want[..]);
            node = list.successor(n);
        }
        assert_eq!(node, None);
        for (i, (_, _, _, k)) in ikeys.iter().enumerate() {
            let at = list.first(Seek::AtOrAfter(k)).map(|n| list.entry(n).0);
            assert_eq!(at, Some(&k[..]));
            let after = list.first(Seek::After(k)).map(|n| list.entry(n).0);
            assert_eq!(after, ikeys.get(i + 1).map(|e| &e.3[..]));
        }
    }

    #[test]
    fn arena_entries_survive_chunk_changes_and_are_charged() {
        let m = Memtable::new();
        let big = vec![7u8; (1 << 20) / 8 + 1];
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
        // Every node: its bytes, at least a height byte, a pointer and two lengths each.
        assert!(m.approximate_bytes() >= stored + 3000 * 9);
        // Abandoned chunk tails are bounded: less than one largest small node per chunk.
        assert!(m.approximate_bytes() < stored + 3000 * 40 + stored / 4);
    }

    #[test]
    fn values_handed_out_are_copies() {
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

    /// Random batches of puts and deletes (short keys, long keys sharing long prefixes, empty
    /// and large values, replays of a batch already inserted) against a `BTreeMap` of internal
    /// keys: every get at every snapshot, a full scan across chunk boundaries, and seeks.
    #[test]
    fn matches_a_btreemap_model() {
        let cases: u64 = std::env::var("MEMTABLE_MODEL_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8);
        for case in 0..cases {
            model_case(case);
        }
    }

    fn model_case(seed: u64) {
        let mut rng = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
        let mut rand = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n.max(1)
        };
        let m = Arc::new(Memtable::new());
        let mut model = std::collections::BTreeMap::new();
        let mut seq = 1u64;
        let mut last_batch: Option<(u64, Vec<BatchOp>)> = None;
        for _ in 0..400 {
            if rand(10) == 0
                && let Some((first, ops)) = &last_batch
            {
                m.insert_batch(*first, ops);
                continue;
            }
            let ops: Vec<BatchOp> = (0..1 + rand(8)).map(|_| model_op(&mut rand)).collect();
            for (s, op) in (seq..).zip(&ops) {
                let (k, kind, v) = match op {
                    BatchOp::Put { key, value } => (key, Kind::Put, value.clone()),
                    BatchOp::Delete { key } => (key, Kind::Delete, Vec::new()),
                };
                model.insert(Ordered(key::encode(k, s, kind)), v);
            }
            m.insert_batch(seq, &ops);
            last_batch = Some((seq, ops.clone()));
            seq += ops.len() as u64;
        }
        assert_eq!(m.len(), model.len(), "seed {seed}");
        check_scan(&m, &model, seed);
        check_gets(&m, &model, seq, &mut rand, seed);
    }

    /// Internal keys in internal-key order, for the model.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Ordered(Vec<u8>);

    impl Ord for Ordered {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            key::compare(&self.0, &other.0)
        }
    }

    impl PartialOrd for Ordered {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }

    fn model_key(rand: &mut impl FnMut(u64) -> u64) -> Vec<u8> {
        let k = rand(60);
        match k % 3 {
            0 => format!("k{k}").into_bytes(),
            1 => format!("{}{k:03}", "p".repeat(20)).into_bytes(),
            _ => {
                let mut key = vec![0u8; usize::try_from(k % 5).unwrap()];
                key.push(u8::try_from(k).unwrap());
                key
            }
        }
    }

    fn model_op(rand: &mut impl FnMut(u64) -> u64) -> BatchOp {
        let key = model_key(rand);
        if rand(4) == 0 {
            return BatchOp::Delete { key };
        }
        let len = match rand(20) {
            0 => 150_000,
            1 => 0,
            _ => rand(120),
        };
        let value = vec![u8::try_from(rand(256)).unwrap(); usize::try_from(len).unwrap()];
        BatchOp::Put { key, value }
    }

    fn check_scan(
        m: &Arc<Memtable>,
        model: &std::collections::BTreeMap<Ordered, Vec<u8>>,
        seed: u64,
    ) {
        let mut it = MemtableIter::new(Arc::clone(m));
        it.seek_to_first().unwrap();
        for (k, v) in model {
            assert!(it.valid(), "seed {seed}: scan ended early");
            assert_eq!(
                (it.key(), it.value_slice()),
                (&k.0[..], &v[..]),
                "seed {seed}"
            );
            it.next().unwrap();
        }
        assert!(!it.valid(), "seed {seed}: scan went on");
        for k in model.keys().step_by(7) {
            it.seek(&k.0).unwrap();
            assert_eq!(it.key(), &k.0[..], "seed {seed}: seek");
        }
    }

    fn check_gets(
        m: &Memtable,
        model: &std::collections::BTreeMap<Ordered, Vec<u8>>,
        last: u64,
        rand: &mut impl FnMut(u64) -> u64,
        seed: u64,
    ) {
        for _ in 0..2000 {
            let user = model_key(rand);
            let at = 1 + rand(last + 1);
            let seek = key::seek_key(&user, at);
            let want = model
                .range(Ordered(seek.clone())..)
                .next()
                .and_then(|(k, v)| {
                    let p = key::parse(&k.0)?;
                    (p.user == &user[..]).then(|| match p.kind {
                        Kind::Put => Lookup::Value(Bytes::from(v.clone())),
                        Kind::Delete => Lookup::Deleted,
                    })
                });
            assert_eq!(m.get(&user, at), want, "seed {seed}: {user:?} at {at}");
        }
    }

    /// A scan copies entries out of the arena under the read lock: a chunk of large values is
    /// bounded by bytes, not only by entries, so neither the copy nor the lock hold grows
    /// with the values.
    #[test]
    fn a_scan_chunk_of_large_values_is_bounded_by_bytes() {
        let m = Arc::new(Memtable::new());
        let big = vec![3u8; 100 << 10];
        for i in 0..300u64 {
            let key = format!("k{i:04}").into_bytes();
            let value = big.clone();
            m.insert_batch(i + 1, &[BatchOp::Put { key, value }]);
        }
        let mut it = MemtableIter::new(Arc::clone(&m));
        it.seek_to_first().unwrap();
        let mut seen = 0;
        let mut largest_chunk = 0;
        while it.valid() {
            largest_chunk = largest_chunk.max(it.buf.bytes.len());
            assert_eq!(it.value_slice().len(), big.len());
            seen += 1;
            it.next().unwrap();
        }
        assert_eq!(seen, 300);
        assert!(
            largest_chunk <= CHUNK_BYTES + big.len() + 64,
            "a chunk copied {largest_chunk} bytes"
        );
    }
}
