//! The memtable: recent writes, sorted by internal key, readable while written.
//!
//! A `BTreeSet` of entries behind a `parking_lot::RwLock` rather than a lock-free skiplist: crossbeam-skiplist
//! 0.1.3 leaks every node a range iteration visits (upstream issue 1178), and scans visit every
//! node. Writers already serialise on the WAL, so a write lock per batch costs little. Scans never
//! hold the lock for long: they copy a bounded chunk of entries under the read lock and resume
//! after the last key they copied. That is consistent without holding the lock, because every
//! entry carries its sequence number and a scan ignores entries newer than its snapshot.
//!
//! Dropping the last `Arc<Memtable>` (after its flush is committed and the last reader is done)
//! frees every node: `BTreeSet` owns its nodes, nothing is leaked.
//!
//! Keys and values are copied into an arena of chunks (`Arena`) rather than allocated one by
//! one: each tree entry is one slice (`key | value`) of a shared chunk, so an insert costs a
//! reference count increment instead of two `malloc`s, a scan's copy of an entry is a reference
//! count increment (a `Bytes` cut from a single `Vec` allocates its shared header on its first clone),
//! and dropping a flushed memtable frees a chunk per megabyte instead of two blocks per entry.
//! A chunk lives while any slice of it does; values handed to readers and scans are copies, so
//! only the memtable and its scans' chunk buffers hold slices.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
#[cfg(test)]
use engine_api::BatchOp;
use engine_api::Result;
use parking_lot::RwLock;

use crate::coding::Reader;
use crate::iter::InternalIterator;
use crate::key::{self, Kind, SeqNo};
use crate::op::AsOp;

/// Bytes charged per entry on top of its arena bytes: its tree slot (a [`MemKey`], 48 bytes).
/// The slack of partly filled tree nodes is not charged.
const ENTRY_OVERHEAD: usize = 48;

/// The first arena chunk; each next one doubles, up to [`MAX_CHUNK`]. Small memtables (tests,
/// tiny options) stay small, large ones allocate once per megabyte.
const FIRST_CHUNK: usize = 4 << 10;

/// The largest arena chunk.
const MAX_CHUNK: usize = 1 << 20;

/// Entries larger than this get an allocation of their own, so a large value never abandons
/// the free tail of a chunk.
const LARGE_ENTRY: usize = MAX_CHUNK / 8;

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
    map: RwLock<Tree>,
    bytes: AtomicUsize,
}

/// The tree and the arena its keys and values live in, under one lock.
#[derive(Debug, Default)]
struct Tree {
    map: BTreeSet<MemKey<'static>>,
    arena: Arena,
}

/// Chunks that entries are copied into. `chunk` is the free tail of the current chunk; the
/// filled part has been split off into the entries' `Bytes`, which share the chunk's buffer.
#[derive(Debug, Default)]
struct Arena {
    chunk: BytesMut,
    next_chunk: usize,
}

impl Arena {
    /// Copies `varint(key length) | user | trailer | value` into the arena as one slice (the
    /// length there rather than in the tree slot: a byte beside the key instead of eight in
    /// every slot). Returns it with the bytes charged for it: its length, plus the free tail of
    /// a chunk given up to make room (memory held that no entry will use).
    fn copy(&mut self, user: &[u8], trailer: [u8; key::TRAILER_LEN], value: &[u8]) -> Stored {
        let (len, len_bytes) = varint(user.len() + trailer.len());
        let len = len.get(..len_bytes).unwrap_or_default();
        let n = len.len() + user.len() + trailer.len() + value.len();
        let mut own = BytesMut::new();
        let mut charged = n;
        let buf = if n > LARGE_ENTRY {
            own.reserve(n);
            &mut own
        } else {
            charged += self.make_room(n);
            &mut self.chunk
        };
        buf.extend_from_slice(len);
        buf.extend_from_slice(user);
        buf.extend_from_slice(&trailer);
        buf.extend_from_slice(value);
        Stored {
            key: MemKey::entry(buf.split_to(n).freeze()),
            charged,
        }
    }

    /// Starts a new chunk if the current one cannot take `n` more bytes; returns the bytes of
    /// the abandoned tail.
    fn make_room(&mut self, n: usize) -> usize {
        let spare = self.chunk.capacity() - self.chunk.len();
        if spare >= n {
            return 0;
        }
        let size = self.next_chunk.clamp(FIRST_CHUNK, MAX_CHUNK);
        self.next_chunk = size.saturating_mul(2);
        self.chunk = BytesMut::with_capacity(size.max(n));
        spare
    }
}

/// LEB128 of `v`: the bytes and how many of them are used.
#[expect(clippy::cast_possible_truncation, reason = "seven bits at a time")]
fn varint(mut v: usize) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let mut n = 0;
    for b in &mut out {
        n += 1;
        if v < 0x80 {
            *b = v as u8;
            break;
        }
        *b = (v as u8) | 0x80;
        v >>= 7;
    }
    (out, n)
}

/// A tree entry: one arena slice holding the internal key's length, the key, then the value; and
/// the user key's first 16 bytes inline (big-endian, zero-padded; two `u64`s rather than a
/// `u128`, whose 16-byte alignment would pad the slot from 56 to 64 bytes). Two keys whose heads differ are ordered by them alone, without reading the
/// keys' bytes: an insert or lookup compares against some thirty keys on its way down the
/// tree, each of them elsewhere in the arena, and the heads spare those memory reads (and
/// most of each comparison). Keys with equal heads (equal user keys, long shared prefixes,
/// or keys that differ only by trailing zero bytes) are compared in full.
///
/// The tree holds `MemKey<'static>`s (arena slices); a point lookup probes it with a
/// `MemKey<'a>` that borrows the caller's seek key, through the tree seen as a
/// `BTreeSet<MemKey<'a>>` (the set is covariant in its element), so a get builds no owned key:
/// the first clone of a `Vec`-backed `Bytes` allocates its shared header, a `malloc` and a
/// `free` per get.
#[derive(Clone, Debug)]
struct MemKey<'a> {
    head: [u64; 2],
    entry: Entry<'a>,
}

/// The bytes behind a tree key: an arena slice (`varint(key length) | key | value`) in the
/// tree, or a borrowed seek key alone in a probe. (Two variants, so the enum takes the niche of
/// `Bytes`'s vtable pointer and the slot stays 48 bytes.)
#[derive(Clone, Debug)]
enum Entry<'a> {
    Stored(Bytes),
    Probe(&'a [u8]),
}

impl Entry<'_> {
    /// The internal key and the value.
    fn split(&self) -> (&[u8], &[u8]) {
        match self {
            Entry::Stored(b) => {
                let mut r = Reader::new(b);
                let ikey = r.bytes().unwrap_or_default();
                (ikey, b.get(r.pos()..).unwrap_or_default())
            }
            Entry::Probe(ikey) => (ikey, &[]),
        }
    }
}

impl MemKey<'static> {
    /// An owned key without a value (a scan's seek target).
    fn seek_target(ikey: &[u8]) -> Self {
        let (len, len_bytes) = varint(ikey.len());
        let mut entry = Vec::with_capacity(len_bytes + ikey.len());
        entry.extend_from_slice(len.get(..len_bytes).unwrap_or_default());
        entry.extend_from_slice(ikey);
        MemKey::entry(Bytes::from(entry))
    }

    /// The arena entry `varint(key length) | ikey | value`.
    fn entry(entry: Bytes) -> Self {
        let entry = Entry::Stored(entry);
        MemKey {
            head: head(key::user_key(entry.split().0)),
            entry,
        }
    }
}

impl<'a> MemKey<'a> {
    /// A seek target borrowing `ikey` (a point lookup's probe).
    fn probe(ikey: &'a [u8]) -> Self {
        MemKey {
            head: head(key::user_key(ikey)),
            entry: Entry::Probe(ikey),
        }
    }

    fn ikey(&self) -> &[u8] {
        self.entry.split().0
    }

    fn value(&self) -> &[u8] {
        self.entry.split().1
    }
}

/// The first 16 bytes of `user` as a big-endian integer, zero-padded: if two heads differ,
/// they order as the user keys do (a byte that differs decides both; where one key has ended,
/// its padding is a zero, and it is a prefix of the other, so it sorts first or the heads tie).
#[expect(
    clippy::big_endian_bytes,
    reason = "byte order as an integer: the first byte must be the most significant (nothing on disk)"
)]
fn head(user: &[u8]) -> [u64; 2] {
    let mut h = [0u8; 16];
    let n = user.len().min(16);
    if let (Some(dst), Some(src)) = (h.get_mut(..n), user.get(..n)) {
        dst.copy_from_slice(src);
    }
    let (hi, lo) = h.split_at(8);
    let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
    [word(hi), word(lo)]
}

impl PartialEq for MemKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for MemKey<'_> {}

impl Ord for MemKey<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let [a0, a1] = self.head;
        let [b0, b1] = other.head;
        // Word by word: the array's own `Ord` goes through a slice comparison loop.
        a0.cmp(&b0)
            .then(a1.cmp(&b1))
            .then_with(|| key::compare(self.ikey(), other.ikey()))
    }
}

impl PartialOrd for MemKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One entry copied into the arena.
struct Stored {
    key: MemKey<'static>,
    charged: usize,
}

impl Memtable {
    pub(crate) fn new() -> Self {
        Memtable {
            map: RwLock::new(Tree::default()),
            bytes: AtomicUsize::new(0),
        }
    }

    /// Inserts the operations of one batch, numbered from `first_seq`, under one write lock.
    pub(crate) fn insert_batch<T: AsOp>(&self, first_seq: SeqNo, ops: &[T]) {
        let mut added = 0;
        let mut tree = self.map.write();
        let Tree { map, arena } = &mut *tree;
        for (seq, op) in (first_seq..).zip(ops) {
            let op = op.as_op();
            let e = arena.copy(op.key, key::trailer_bytes(seq, op.kind), op.value);
            added += e.charged + ENTRY_OVERHEAD;
            map.replace(e.key);
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
        let probe = MemKey::probe(seek);
        let tree = self.map.read();
        // The tree seen with the probe's lifetime (module documentation of `MemKey`).
        let map: &BTreeSet<MemKey<'_>> = &tree.map;
        let k = map
            .range((Bound::Included(&probe), Bound::Unbounded))
            .next()?;
        let parsed = key::parse(k.ikey())?;
        if parsed.user != user {
            return None;
        }
        Some(match parsed.kind {
            // Copied out: a slice would keep its whole arena chunk (up to 1 MiB) alive for as
            // long as the caller holds the value.
            Kind::Put => Lookup::Value(Bytes::copy_from_slice(k.value())),
            Kind::Delete => Lookup::Deleted,
        })
    }

    /// Approximate memory held, in bytes.
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.read().map.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.read().map.len()
    }

    /// Up to `max` entries from `from` on, copied out under the read lock.
    fn chunk(&self, from: Bound<MemKey<'static>>, max: usize) -> Vec<MemKey<'static>> {
        let tree = self.map.read();
        tree.map
            .range((from, Bound::Unbounded))
            .take(max)
            .cloned()
            .collect()
    }
}

/// An iterator over a memtable in internal-key order that copies bounded chunks. It holds the
/// memtable alive (an `Arc`), never its lock.
pub(crate) struct MemtableIter {
    mem: std::sync::Arc<Memtable>,
    buf: Vec<MemKey<'static>>,
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

    /// The current value, borrowed (empty when not valid).
    pub(crate) fn value_slice(&self) -> &[u8] {
        self.buf.get(self.pos).map_or(&[], MemKey::value)
    }

    fn fill(&mut self, from: Bound<MemKey<'static>>) {
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
        self.fill(Bound::Included(MemKey::seek_target(target)));
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        self.pos += 1;
        if self.pos >= self.buf.len()
            && !self.exhausted
            && let Some(last) = self.buf.last()
        {
            let from = Bound::Excluded(last.clone());
            self.fill(from);
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.buf.get(self.pos).map_or(&[], MemKey::ikey)
    }

    /// A copy: this is what scans hand to users, and a slice would keep its whole arena chunk
    /// alive (see [`MemtableIter::value_slice`] for the flush's borrowed view).
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
    fn the_charge_per_entry_is_the_tree_slot() {
        assert_eq!(std::mem::size_of::<MemKey<'static>>(), ENTRY_OVERHEAD);
    }

    #[test]
    fn tree_keys_order_as_internal_keys() {
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
                ikeys.push(Bytes::from(key::encode(u, seq, kind)));
            }
        }
        for a in &ikeys {
            for b in &ikeys {
                let got = MemKey::seek_target(a).cmp(&MemKey::seek_target(b));
                assert_eq!(got, key::compare(a, b), "{a:?} vs {b:?}");
                let probed = MemKey::probe(a).cmp(&MemKey::seek_target(b));
                assert_eq!(probed, key::compare(a, b), "probe {a:?} vs {b:?}");
            }
        }
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
}
