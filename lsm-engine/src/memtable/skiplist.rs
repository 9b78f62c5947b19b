//! The memtable's ordered store: a skiplist whose nodes live in an arena of byte chunks and
//! point at each other by arena address, so the order needs no per-entry allocation and no
//! tree slot beside the bytes (a `BTreeSet` cannot be one: its `Ord` has no access to the
//! arena).
//!
//! A node is one contiguous run of arena bytes:
//! `user key length (u16 LE) | internal key | next[0..height] (6 bytes each) |
//! varint(value length) | value`. The key sits at a fixed offset so that a step of a search
//! reads the first sixteen bytes of the node's user key as two integers right after the
//! node's first bytes, and most comparisons end there (a user key is at most
//! `engine_api::MAX_KEY_LEN`, 65,535 bytes, checked before any write or replay reaches the
//! memtable, so its length fits the u16). A pointer is 48 bits: a 44-bit address, the chunk's
//! index (24 bits) above the offset in it (20 bits: small chunks are at most 1 MiB; a node
//! larger than [`LARGE_NODE`] gets a chunk of its own, starting at offset 0), and in the first
//! pointer of a node, above the address, the node's height (4 bits; at most 12). No memtable
//! that fits in memory runs out of addresses (2^24 chunks of at least 128 KiB). Six bytes
//! rather than eight per pointer, and the height inside one: with a branching factor of 4 a
//! node has 1.33 pointers on average, so an entry of 16 + 100 bytes costs about 11 bytes
//! beyond its key, trailer and value (RocksDB's skiplist: about 13, plus its 8-byte
//! alignment). Each byte counts: write amplification moves in steps with the entries a
//! memtable holds (`docs/lsm.md`, "Memtable density").
//!
//! Single writer, readers excluded by the memtable's lock: plain `Vec`s, no atomics, no
//! `unsafe`. Chunks never move once written (a chunk is filled within its capacity), and even
//! if one did, addresses are offsets, not pointers.

use std::cmp::Ordering;

use crate::coding::Reader;
use crate::key;

/// Tallest node: 4^12 = 16 M entries before the top level thins out.
const MAX_HEIGHT: usize = 12;

/// Bytes per next pointer.
const PTR: usize = 6;

/// Where a node's internal key starts: after its user key's length (u16) and its height.
const KEY_AT: usize = 2;

/// Low bits of an address: the offset in its chunk.
const OFFSET_BITS: u32 = 20;

/// No node (the end of a level, or the head when a predecessor).
const NIL: u64 = (1 << ADDRESS_BITS) - 1;

/// Bits of an address; the top four of a six-byte pointer field are the node's height in its
/// first pointer (a byte saved per entry: the memtable's density sets write amplification).
const ADDRESS_BITS: u32 = 44;

/// The first arena chunk; each next one doubles, up to [`MAX_CHUNK`]. Small memtables (tests,
/// tiny options) stay small, large ones allocate once per megabyte.
const FIRST_CHUNK: usize = 4 << 10;

/// The largest small chunk: its offsets fit [`OFFSET_BITS`].
const MAX_CHUNK: usize = 1 << OFFSET_BITS;

/// Nodes larger than this get a chunk of their own, so a large value never abandons the free
/// tail of a chunk.
const LARGE_NODE: usize = MAX_CHUNK / 8;

/// Where a walk starts.
#[derive(Clone, Copy, Debug)]
pub(super) enum Seek<'a> {
    /// The first node.
    Start,
    /// The first node at or after this internal key.
    AtOrAfter(&'a [u8]),
    /// The first node after this internal key.
    After(&'a [u8]),
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct SkipList {
    chunks: Vec<Vec<u8>>,
    /// The chunk small nodes are appended to (`None` before the first).
    current: Option<usize>,
    next_chunk: usize,
    head: [u64; MAX_HEIGHT],
    height: usize,
    len: usize,
    charged: usize,
    rng: u64,
}

impl Default for SkipList {
    fn default() -> Self {
        SkipList {
            chunks: Vec::new(),
            current: None,
            next_chunk: FIRST_CHUNK,
            head: [NIL; MAX_HEIGHT],
            height: 1,
            len: 0,
            charged: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

fn address(chunk: usize, offset: usize) -> u64 {
    ((chunk as u64) << OFFSET_BITS) | offset as u64
}

fn split(a: u64) -> (usize, usize) {
    (
        (a >> OFFSET_BITS) as usize,
        (a & ((1 << OFFSET_BITS) - 1)) as usize,
    )
}

impl SkipList {
    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Arena bytes taken: every node's bytes and every chunk tail given up for a new chunk
    /// (the current chunk's free tail is the only memory held and not charged: it shrinks as
    /// entries arrive). Unlinked nodes (an internal key inserted twice) stay charged.
    pub(super) fn charged(&self) -> usize {
        self.charged
    }

    /// Inserts `user | trailer` with `value`; an equal internal key already held is replaced.
    pub(super) fn insert(&mut self, user: &[u8], trailer: [u8; key::TRAILER_LEN], value: &[u8]) {
        let height = self.random_height();
        let node = self.append(height, user, trailer, value);
        let (prev, after) = self.search(self.node_key(node), Ordering::Less);
        self.unlink_equal(node, after, &prev);
        for (level, &p) in prev.iter().enumerate().take(height) {
            let after = self.next(p, level);
            self.set_next(node, level, after);
            self.set_next(p, level, node);
        }
        self.height = self.height.max(height);
        self.len += 1;
    }

    /// The first node of the walk `from` (`None` at the end).
    pub(super) fn first(&self, from: Seek<'_>) -> Option<u64> {
        let n = match from {
            Seek::Start => self.next(NIL, 0),
            Seek::AtOrAfter(ikey) => self.search(ikey, Ordering::Less).1,
            Seek::After(ikey) => self.search(ikey, Ordering::Equal).1,
        };
        (n != NIL).then_some(n)
    }

    /// The node after `node` (`None` at the end).
    pub(super) fn successor(&self, node: u64) -> Option<u64> {
        let n = self.next(node, 0);
        (n != NIL).then_some(n)
    }

    /// The internal key and the value of `node`.
    pub(super) fn entry(&self, node: u64) -> (&[u8], &[u8]) {
        let bytes = self.bytes(node);
        let at = pointers_at(bytes) + height(bytes) * PTR;
        let value = Reader::new(bytes.get(at..).unwrap_or_default()).bytes();
        (ikey_of(bytes), value.unwrap_or_default())
    }

    fn node_key(&self, node: u64) -> &[u8] {
        ikey_of(self.bytes(node))
    }

    /// Walks down from the top level to the nodes around `ikey`: for each level the last node
    /// whose key compared with `ikey` is `Less` or `skip` (`NIL`: the head), and the node after
    /// that on level 0 (with `skip` `Less`: the first at or after `ikey`; with `Equal`: the first
    /// after it).
    ///
    /// Each step reads one node: its key's first eight bytes decide most comparisons (as an
    /// integer), and its next pointer is read from the same bytes when the walk moves on. A node
    /// found not before `ikey` on one level is not compared again on the levels below (LevelDB's
    /// and RocksDB's `last_bigger`).
    fn search(&self, ikey: &[u8], skip: Ordering) -> ([u64; MAX_HEIGHT], u64) {
        let probe = Probe::new(ikey);
        let mut prev = [NIL; MAX_HEIGHT];
        let (mut x, mut x_bytes) = (NIL, &[][..]);
        let mut bigger = NIL;
        for level in (0..self.height.min(MAX_HEIGHT)).rev() {
            loop {
                let n = if x == NIL {
                    self.head.get(level).copied().unwrap_or(NIL)
                } else {
                    pointer(x_bytes, level)
                };
                if n == NIL || n == bigger {
                    break;
                }
                let n_bytes = self.bytes(n);
                if !probe.after(n_bytes, skip) {
                    bigger = n;
                    break;
                }
                (x, x_bytes) = (n, n_bytes);
            }
            if let Some(slot) = prev.get_mut(level) {
                *slot = x;
            }
        }
        let after = if x == NIL {
            self.head[0]
        } else {
            pointer(x_bytes, 0)
        };
        (prev, after)
    }

    /// Unlinks `old`, the node after `prev` on level 0, if it holds `node`'s internal key (a
    /// replay of the same record: the last insert wins, as `BTreeSet::replace` did).
    fn unlink_equal(&mut self, node: u64, old: u64, prev: &[u64; MAX_HEIGHT]) {
        if old == NIL || self.node_key(old) != self.node_key(node) {
            return;
        }
        for (level, &p) in prev.iter().enumerate().take(self.height) {
            if self.next(p, level) == old {
                let after = self.next(old, level);
                self.set_next(p, level, after);
            }
        }
        self.len -= 1;
    }

    /// Heights 1, 2, 3 … with probability 3/4, 3/16, 3/64 … (branching factor 4).
    fn random_height(&mut self) -> usize {
        // xorshift64: cheap, and deterministic (a test's layout never depends on the clock).
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let pairs = (self.rng.trailing_zeros() / 2) as usize;
        (1 + pairs).min(MAX_HEIGHT)
    }

    /// Writes a node with every pointer `NIL`; returns its address.
    fn append(
        &mut self,
        height: usize,
        user: &[u8],
        trailer: [u8; key::TRAILER_LEN],
        value: &[u8],
    ) -> u64 {
        let ulen = u16::try_from(user.len()).unwrap_or(u16::MAX);
        let (vlen_buf, vn) = varint(value.len());
        let n = KEY_AT + user.len() + trailer.len() + height * PTR + vn + value.len();
        let first = NIL | ((height as u64) << ADDRESS_BITS);
        let at = self.room(n);
        let Some(chunk) = self.chunks.get_mut(split(at).0) else {
            return at;
        };
        chunk.extend_from_slice(&ulen.to_le_bytes());
        chunk.extend_from_slice(user);
        chunk.extend_from_slice(&trailer);
        chunk.extend_from_slice(first.to_le_bytes().get(..PTR).unwrap_or_default());
        for _ in 1..height {
            chunk.extend_from_slice(NIL.to_le_bytes().get(..PTR).unwrap_or_default());
        }
        chunk.extend_from_slice(vlen_buf.get(..vn).unwrap_or_default());
        chunk.extend_from_slice(value);
        at
    }

    /// Makes room for `n` more bytes; returns the address they will start at.
    fn room(&mut self, n: usize) -> u64 {
        self.charged += n;
        if n > LARGE_NODE {
            return self.new_chunk(n);
        }
        let current = self.current.and_then(|c| Some((c, self.chunks.get(c)?)));
        match current {
            Some((c, chunk)) if chunk.capacity() - chunk.len() >= n => address(c, chunk.len()),
            _ => {
                self.charged += current.map_or(0, |(_, chunk)| chunk.capacity() - chunk.len());
                let size = self.next_chunk.clamp(FIRST_CHUNK, MAX_CHUNK);
                self.next_chunk = size.saturating_mul(2);
                self.current = Some(self.chunks.len());
                self.new_chunk(size)
            }
        }
    }

    /// Starts a chunk of `capacity` bytes; returns its address.
    fn new_chunk(&mut self, capacity: usize) -> u64 {
        self.chunks.push(Vec::with_capacity(capacity));
        address(self.chunks.len() - 1, 0)
    }

    /// The bytes from `node` to the end of its chunk.
    fn bytes(&self, node: u64) -> &[u8] {
        let (c, off) = split(node);
        self.chunks
            .get(c)
            .and_then(|c| c.get(off..))
            .unwrap_or_default()
    }

    /// The successor of `node` on `level` (`NIL` for the head).
    fn next(&self, node: u64, level: usize) -> u64 {
        if node == NIL {
            return self.head.get(level).copied().unwrap_or(NIL);
        }
        pointer(self.bytes(node), level)
    }

    fn set_next(&mut self, node: u64, level: usize, to: u64) {
        if node == NIL {
            if let Some(slot) = self.head.get_mut(level) {
                *slot = to;
            }
            return;
        }
        let at = pointers_at(self.bytes(node)) + level * PTR;
        let (c, off) = split(node);
        let slot = self
            .chunks
            .get_mut(c)
            .and_then(|c| c.get_mut(off + at..off + at + PTR));
        if let Some(slot) = slot {
            // Keep the height bits above the address.
            let old = slot
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b));
            let word = (old & !NIL) | (to & NIL);
            slot.copy_from_slice(word.to_le_bytes().get(..PTR).unwrap_or_default());
        }
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

/// A node's user key length.
#[inline]
fn user_len(node: &[u8]) -> usize {
    node.first_chunk::<2>()
        .map_or(0, |b| usize::from(u16::from_le_bytes(*b)))
}

/// A node's internal key.
#[inline]
fn ikey_of(node: &[u8]) -> &[u8] {
    let end = KEY_AT + user_len(node) + key::TRAILER_LEN;
    node.get(KEY_AT..end).unwrap_or_default()
}

/// Where a node's next pointers start.
#[inline]
fn pointers_at(node: &[u8]) -> usize {
    KEY_AT + user_len(node) + key::TRAILER_LEN
}

/// Next pointer `level` of a node: one eight-byte load, masked, where two more bytes follow in
/// the chunk (they belong to the next pointer, the value or the next node); six bytes at a
/// chunk's end.
#[inline]
fn pointer(node: &[u8], level: usize) -> u64 {
    let at = pointers_at(node) + level * PTR;
    let Some(tail) = node.get(at..) else {
        return NIL;
    };
    if let Some(w) = tail.first_chunk::<8>() {
        return u64::from_le_bytes(*w) & NIL;
    }
    match tail.first_chunk::<PTR>() {
        Some(&[a, b, c, d, e, f]) => u64::from_le_bytes([a, b, c, d, e, f, 0, 0]) & NIL,
        None => NIL,
    }
}

/// A node's height: the bits above the address in its first pointer.
fn height(node: &[u8]) -> usize {
    let at = pointers_at(node);
    let top = node.get(at + PTR - 1).copied().unwrap_or(0);
    usize::from(top >> (ADDRESS_BITS - 40)) & 0xf
}

/// The first sixteen bytes of a node's user key as two big-endian integers, zero-padded.
#[inline]
fn node_head(node: &[u8]) -> [u64; 2] {
    let user = user_len(node);
    if user >= 16
        && let Some(w) = node.get(KEY_AT..).and_then(<[u8]>::first_chunk::<16>)
    {
        return words(w);
    }
    head(node.get(KEY_AT..KEY_AT + user).unwrap_or_default())
}

/// A search key with its user key's first sixteen bytes as two big-endian integers.
struct Probe<'a> {
    ikey: &'a [u8],
    head: [u64; 2],
}

impl<'a> Probe<'a> {
    fn new(ikey: &'a [u8]) -> Self {
        Probe {
            ikey,
            head: head(key::user_key(ikey)),
        }
    }

    /// Whether the probe comes after `node`'s key, or compares `skip` with it (`Equal`: at
    /// it too). By the first sixteen bytes of the user keys as integers when they differ (a
    /// byte that differs decides both; a shorter key's zero padding sorts it first or ties),
    /// else in full. Sixteen, not eight: zero-padded decimal keys (db_bench's, the harness's)
    /// share their first ten bytes.
    #[inline]
    fn after(&self, node: &[u8], skip: Ordering) -> bool {
        let [a0, a1] = node_head(node);
        let [b0, b1] = self.head;
        if a0 != b0 {
            return a0 < b0;
        }
        if a1 != b1 {
            return a1 < b1;
        }
        let c = key::compare(ikey_of(node), self.ikey);
        c == Ordering::Less || c == skip
    }
}

/// The first sixteen bytes of `user`, zero-padded, as two big-endian integers.
#[inline]
fn head(user: &[u8]) -> [u64; 2] {
    if let Some(w) = user.first_chunk::<16>() {
        return words(w);
    }
    let mut h = [0u8; 16];
    for (d, s) in h.iter_mut().zip(user) {
        *d = *s;
    }
    words(&h)
}

#[inline]
#[expect(
    clippy::big_endian_bytes,
    reason = "byte order as an integer: the first byte must be the most significant (nothing on disk)"
)]
fn words(w: &[u8; 16]) -> [u64; 2] {
    let (hi, lo) = w.split_at(8);
    let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
    [word(hi), word(lo)]
}
