//! The memtable's storage: a `BTreeSet` of 24-byte slots (the user key's first 16 bytes and a
//! pointer to the entry in an arena of chunks), the arena, and the one lock over both. The only
//! module of the crate allowed `unsafe`: a slot's pointer is read without a lifetime the compiler
//! can check, so everything that creates, stores or reads one lives here, behind a safe API
//! ([`Store`], [`Writer`], [`Cursor`]).
//!
//! # Safety argument
//!
//! 1. **Every slot points at a well-formed entry.** A [`Slot`] is created in two places only:
//!    [`Arena::copy`], which writes `varint(key length) | varint(value length) | key | value`
//!    into arena memory it has reserved for exactly those bytes before it returns the slot; and
//!    [`with_probe`], which encodes a seek key the same way into a buffer that outlives every
//!    use of its slot (the closure it is passed). `Slot` is private to this module and never
//!    handed out.
//! 2. **Arena memory lives as long as the store and never moves or changes once written.** A
//!    chunk is a boxed slice turned into a raw pointer; it is freed only when the `Arena` is
//!    dropped, which happens when the [`Store`] is, and nothing ever removes bytes from it (a
//!    replaced tree entry leaves its bytes in place). New entries go only into the reserved,
//!    never-read tail of a chunk, written through the raw pointer, so no `&mut` to bytes a reader
//!    may be looking at is ever made.
//! 3. **Readers see whole entries.** An entry is written under the write lock before its slot
//!    enters the tree; a reader finds the slot under the read lock, so the lock orders the
//!    writes before the reads. Slots that leave the lock go into a [`Cursor`], which holds the
//!    store's `Arc`: by (2) the bytes stay valid for as long as the cursor, and the slices it
//!    hands out borrow the cursor.
//! 4. **Send and Sync.** A chunk is owned memory like a `Box<[u8]>`, written only through
//!    `&mut Arena`; a slot is a read-only pointer to bytes that no longer change (2). Both may
//!    cross threads, as their safe equivalents (`Box<[u8]>`, `&[u8]`) would.
//!
//! Checked under Miri (Stacked Borrows): `cargo +nightly miri test -p lsm-engine --lib
//! memtable` (skip the three bulk tests, `scans_cross_chunks`, `a_scan_running_while` and
//! `arena_entries_survive`, for time).
//!
//! Why not safe code: `std`'s `BTreeSet` orders elements by their own `Ord`, so a tie on the
//! head must reach the key's bytes from the slot alone; an index into the arena would need the
//! arena at hand inside `cmp`. The safe alternatives at this density were a B-tree of our own
//! (over `u32` offsets, with the arena passed to every comparison) or buckets of entries per
//! head, which degrade to a linear list when many keys share their first 16 bytes
//! (`user:0000…` style keys).
#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::mem::MaybeUninit;
use std::ops::Bound;
use std::ptr::NonNull;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockWriteGuard};

use crate::key;

/// Bytes of one tree slot (what the memtable charges per entry beside its arena bytes).
pub(super) const SLOT_BYTES: usize = size_of::<Slot>();

/// The first arena chunk; each next one doubles, up to [`MAX_CHUNK`]. Small memtables (tests,
/// tiny options) stay small, large ones allocate once per megabyte.
const FIRST_CHUNK: usize = 4 << 10;

/// The largest arena chunk.
const MAX_CHUNK: usize = 1 << 20;

/// Entries larger than this get an allocation of their own, so a large value never abandons
/// the free tail of a chunk.
pub(super) const LARGE_ENTRY: usize = MAX_CHUNK / 8;

/// Entries a cursor copies per visit to the lock.
const CHUNK: usize = 256;

/// Seek keys up to this long are encoded on the stack (a get allocates nothing).
const INLINE_PROBE: usize = 64;

/// The tree and its arena under one lock.
#[derive(Debug, Default)]
pub(super) struct Store {
    tree: RwLock<Tree>,
}

#[derive(Debug, Default)]
struct Tree {
    set: BTreeSet<Slot>,
    arena: Arena,
}

/// A tree entry: the user key's first 16 bytes (big-endian, zero-padded; two `u64`s rather
/// than a `u128`, whose 16-byte alignment would pad the slot to 32 bytes) and the entry's
/// arena bytes. Two slots whose heads differ are ordered by them alone, without reading the
/// arena: an insert or lookup compares against some thirty keys on its way down the tree, each
/// elsewhere in the arena, and the heads spare those cache misses. Keys with equal heads
/// (equal user keys, long shared prefixes, keys that differ only by trailing zero bytes) are
/// compared in full.
#[derive(Clone, Debug)]
struct Slot {
    head: [u64; 2],
    entry: NonNull<u8>,
}

// SAFETY: point 4 of the module documentation.
unsafe impl Send for Slot {}
// SAFETY: point 4 of the module documentation.
unsafe impl Sync for Slot {}

impl Slot {
    /// The internal key and the value.
    fn split(&self) -> (&[u8], &[u8]) {
        // SAFETY: points 1 to 3 of the module documentation: the entry is well formed and
        // outlives every borrow of a slot (slots are borrowed from the locked tree, a cursor
        // that holds the store, or a probe inside `with_probe`).
        unsafe { decode(self.entry) }
    }

    fn ikey(&self) -> &[u8] {
        self.split().0
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Slot {}

impl Ord for Slot {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let [a0, a1] = self.head;
        let [b0, b1] = other.head;
        // Word by word: the array's own `Ord` goes through a slice comparison loop.
        a0.cmp(&b0)
            .then(a1.cmp(&b1))
            .then_with(|| key::compare(self.ikey(), other.ikey()))
    }
}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Reads the entry at `p`.
///
/// # Safety
/// `p` points at bytes written by [`encode`] (or [`Arena::copy`]) that stay allocated and
/// unchanged for `'a`.
unsafe fn decode<'a>(p: NonNull<u8>) -> (&'a [u8], &'a [u8]) {
    let mut at = 0;
    // SAFETY: the caller's contract; the header is two varints our encoder wrote.
    let (klen, vlen) = unsafe { (read_varint(p, &mut at), read_varint(p, &mut at)) };
    // SAFETY: the header is followed by `klen + vlen` bytes of the same entry.
    let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr().add(at), klen + vlen) };
    bytes.split_at(klen)
}

/// One LEB128 value at `p + *at`, advancing `*at`.
///
/// # Safety
/// A varint our encoder wrote starts at `p + *at` and is readable.
unsafe fn read_varint(p: NonNull<u8>, at: &mut usize) -> usize {
    let mut v = 0;
    let mut shift = 0;
    loop {
        // SAFETY: the caller's contract; the encoder ended the varint with a byte below 0x80.
        let b = unsafe { p.as_ptr().add(*at).read() };
        *at += 1;
        v |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
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

/// The pieces of an entry's encoding, in order, and their total length.
fn pieces<'a>(
    k: &'a ([u8; 10], usize),
    v: &'a ([u8; 10], usize),
    parts: [&'a [u8]; 3],
) -> ([&'a [u8]; 5], usize) {
    let [a, b, c] = parts;
    let all = [
        k.0.get(..k.1).unwrap_or_default(),
        v.0.get(..v.1).unwrap_or_default(),
        a,
        b,
        c,
    ];
    let n = all.iter().map(|p| p.len()).sum();
    (all, n)
}

/// Encodes `ikey` (a seek key, no value) into `dst` if it fits; returns the length used.
fn encode(dst: &mut [u8], ikey: &[u8]) -> Option<usize> {
    let (k, v) = (varint(ikey.len()), varint(0));
    let (all, n) = pieces(&k, &v, [ikey, &[], &[]]);
    let mut at = 0;
    for p in all {
        dst.get_mut(at..at + p.len())?.copy_from_slice(p);
        at += p.len();
    }
    Some(n)
}

/// Runs `f` with a slot for the seek key `ikey`, encoded on the stack when short.
fn with_probe<R>(ikey: &[u8], f: impl FnOnce(&Slot) -> R) -> R {
    let mut inline = [0u8; INLINE_PROBE];
    let mut heap = Vec::new();
    let n = encode(&mut inline, ikey);
    // Panics, never falls back to an empty buffer: the slot below would point at one, and the
    // comparisons read the entry's varints through that pointer (point 1 needs real bytes).
    const FITS: &str = "a seek key's encoding fits the buffer encode() filled";
    let bytes: &[u8] = match n {
        Some(n) => inline.get(..n).expect(FITS),
        None => {
            // The key, and two varints of at most 10 bytes each.
            heap.resize(ikey.len() + 20, 0);
            let n = encode(&mut heap, ikey).expect(FITS);
            heap.get(..n).expect(FITS)
        }
    };
    // The slot borrows `bytes`, which live until `f` returns (point 1).
    let slot = Slot {
        head: head(key::user_key(ikey)),
        entry: NonNull::from(bytes).cast(),
    };
    f(&slot)
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

/// One owned allocation of `cap` bytes, written through its raw pointer only.
#[derive(Debug)]
struct Chunk {
    base: NonNull<u8>,
    cap: usize,
}

// SAFETY: point 4 of the module documentation.
unsafe impl Send for Chunk {}
// SAFETY: point 4 of the module documentation.
unsafe impl Sync for Chunk {}

impl Chunk {
    fn new(cap: usize) -> Self {
        let mem: &mut [MaybeUninit<u8>] = Box::leak(Box::new_uninit_slice(cap));
        Chunk {
            base: NonNull::from(mem).cast(),
            cap,
        }
    }
}

impl Default for Chunk {
    /// An empty chunk: the arena before its first entry.
    fn default() -> Self {
        Chunk::new(0)
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let raw = std::ptr::slice_from_raw_parts_mut(self.base.as_ptr().cast(), self.cap);
        // SAFETY: `base` and `cap` are the leaked box of `Chunk::new`, freed once, here.
        drop(unsafe { Box::<[MaybeUninit<u8>]>::from_raw(raw) });
    }
}

/// Chunks that entries are copied into: `current` takes entries until its tail is too short,
/// then joins `full` (with the large entries' own allocations).
#[derive(Debug, Default)]
struct Arena {
    current: Chunk,
    used: usize,
    full: Vec<Chunk>,
    next_chunk: usize,
}

impl Arena {
    /// Copies `varint(key length) | varint(value length) | user | trailer | value` into the
    /// arena. Returns its slot and the bytes charged for it: its length, plus the free tail of
    /// a chunk given up to make room (memory held that no entry will use).
    fn copy(
        &mut self,
        user: &[u8],
        trailer: [u8; key::TRAILER_LEN],
        value: &[u8],
    ) -> (Slot, usize) {
        let (k, v) = (varint(user.len() + trailer.len()), varint(value.len()));
        let (all, n) = pieces(&k, &v, [user, &trailer, value]);
        let (dst, charged) = self.reserve(n);
        let mut at = 0;
        for p in all {
            // SAFETY: `reserve` gave `n` unused bytes at `dst` in a live chunk, and the pieces
            // add up to `n`; they are nobody's source (point 2).
            unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), dst.as_ptr().add(at), p.len()) };
            at += p.len();
        }
        let slot = Slot {
            head: head(user),
            entry: dst,
        };
        (slot, charged)
    }

    /// `n` unused bytes that nothing has read, and the bytes charged for them.
    fn reserve(&mut self, n: usize) -> (NonNull<u8>, usize) {
        if n > LARGE_ENTRY {
            let own = Chunk::new(n);
            let base = own.base;
            self.full.push(own);
            return (base, n);
        }
        let spare = self.current.cap - self.used;
        let mut charged = n;
        if spare < n {
            charged += spare;
            self.start_chunk(n);
        }
        // SAFETY: `used + n <= cap` (checked above, or a new chunk of at least `n` bytes), so
        // the pointer and the `n` bytes after it stay inside the allocation.
        let at = unsafe { self.current.base.add(self.used) };
        self.used += n;
        (at, charged)
    }

    /// Retires the current chunk and starts the next (of at least `n` bytes), doubling up to
    /// [`MAX_CHUNK`].
    fn start_chunk(&mut self, n: usize) {
        let size = self.next_chunk.clamp(FIRST_CHUNK, MAX_CHUNK);
        self.next_chunk = size.saturating_mul(2);
        let old = std::mem::replace(&mut self.current, Chunk::new(size.max(n)));
        if old.cap > 0 {
            self.full.push(old);
        }
        self.used = 0;
    }
}

impl Store {
    /// The write lock, for one batch of inserts.
    pub(super) fn write(&self) -> Writer<'_> {
        Writer(self.tree.write())
    }

    /// Calls `f` with the internal key and value of the first entry at or after the seek key
    /// `seek`, if there is one.
    pub(super) fn find<R>(&self, seek: &[u8], f: impl FnOnce(&[u8], &[u8]) -> R) -> Option<R> {
        with_probe(seek, |probe| {
            let tree = self.tree.read();
            let found = tree
                .set
                .range((Bound::Included(probe), Bound::Unbounded))
                .next()?;
            let (k, v) = found.split();
            Some(f(k, v))
        })
    }

    /// Entries in the tree.
    pub(super) fn len(&self) -> usize {
        self.tree.read().set.len()
    }
}

/// The store under its write lock.
pub(super) struct Writer<'a>(RwLockWriteGuard<'a, Tree>);

impl Writer<'_> {
    /// Inserts one entry (replacing an equal internal key); returns the bytes it is charged.
    pub(super) fn insert(
        &mut self,
        user: &[u8],
        trailer: [u8; key::TRAILER_LEN],
        value: &[u8],
    ) -> usize {
        let Tree { set, arena } = &mut *self.0;
        let (slot, charged) = arena.copy(user, trailer, value);
        set.replace(slot);
        charged
    }
}

/// A position in a store in internal-key order that copies bounded runs of slots under the
/// read lock and reads them after it (point 3). It holds the store alive, never its lock.
#[derive(Debug)]
pub(super) struct Cursor {
    store: Arc<Store>,
    buf: Vec<Slot>,
    pos: usize,
    exhausted: bool,
}

impl Cursor {
    pub(super) fn new(store: Arc<Store>) -> Self {
        Cursor {
            store,
            buf: Vec::new(),
            pos: 0,
            exhausted: true,
        }
    }

    pub(super) fn valid(&self) -> bool {
        self.pos < self.buf.len()
    }

    pub(super) fn seek_to_first(&mut self) {
        self.fill(Bound::Unbounded);
    }

    pub(super) fn seek(&mut self, target: &[u8]) {
        let mut buf = std::mem::take(&mut self.buf);
        with_probe(target, |probe| {
            Self::copy_run(&self.store, &mut buf, Bound::Included(probe));
        });
        self.reset(buf);
    }

    pub(super) fn next(&mut self) {
        self.pos += 1;
        if self.pos >= self.buf.len()
            && !self.exhausted
            && let Some(last) = self.buf.last().cloned()
        {
            self.fill(Bound::Excluded(&last));
        }
    }

    /// The current internal key and value, borrowed (empty when not valid).
    pub(super) fn entry(&self) -> (&[u8], &[u8]) {
        self.buf.get(self.pos).map_or((&[], &[]), Slot::split)
    }

    fn fill(&mut self, from: Bound<&Slot>) {
        let mut buf = std::mem::take(&mut self.buf);
        Self::copy_run(&self.store, &mut buf, from);
        self.reset(buf);
    }

    fn reset(&mut self, buf: Vec<Slot>) {
        self.exhausted = buf.len() < CHUNK;
        self.buf = buf;
        self.pos = 0;
    }

    /// Replaces `buf` with up to [`CHUNK`] slots from `from` on.
    fn copy_run(store: &Store, buf: &mut Vec<Slot>, from: Bound<&Slot>) {
        let tree = store.tree.read();
        buf.clear();
        buf.extend(
            tree.set
                .range((from, Bound::Unbounded))
                .take(CHUNK)
                .cloned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Kind;

    #[test]
    fn a_slot_is_24_bytes() {
        assert_eq!(SLOT_BYTES, 24);
    }

    #[test]
    fn slots_order_as_internal_keys() {
        let users: [&[u8]; 15] = [
            b"",
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
                ikeys.push(key::encode(u, seq, kind));
            }
        }
        let mut arena = Arena::default();
        let stored: Vec<Slot> = ikeys
            .iter()
            .map(|ik| {
                let (user, trailer) = ik.split_at(ik.len() - key::TRAILER_LEN);
                arena.copy(user, trailer.try_into().unwrap(), b"value").0
            })
            .collect();
        for (a, sa) in ikeys.iter().zip(&stored) {
            for (b, sb) in ikeys.iter().zip(&stored) {
                assert_eq!(sa.cmp(sb), key::compare(a, b), "{a:?} vs {b:?}");
                let probed = with_probe(a, |p| p.cmp(sb));
                assert_eq!(probed, key::compare(a, b), "probe {a:?} vs {b:?}");
            }
            assert_eq!(sa.split(), (&a[..], &b"value"[..]));
        }
    }

    #[test]
    fn long_probes_go_to_the_heap_and_still_compare() {
        let user = vec![b'x'; INLINE_PROBE * 3];
        let ikey = key::encode(&user, 5, Kind::Put);
        let mut arena = Arena::default();
        let (user_part, trailer) = ikey.split_at(ikey.len() - key::TRAILER_LEN);
        let (slot, _) = arena.copy(user_part, trailer.try_into().unwrap(), b"");
        let got = with_probe(&ikey, |p| (p.cmp(&slot), p.ikey().to_vec()));
        assert_eq!(got, (std::cmp::Ordering::Equal, ikey));
    }

    #[test]
    fn large_entries_get_their_own_chunk_and_leave_the_current_one() {
        let mut arena = Arena::default();
        let (_, small) = arena.copy(b"a", [0; 8], b"1");
        let used = arena.used;
        let big = vec![9u8; LARGE_ENTRY + 1];
        let (slot, charged) = arena.copy(b"b", [0; 8], &big);
        assert_eq!((arena.used, arena.full.len()), (used, 1));
        assert_eq!(charged, LARGE_ENTRY + 1 + 1 + 8 + 1 + 3);
        assert_eq!(slot.split().1, &big[..]);
        assert_eq!(small, 1 + 1 + 1 + 8 + 1);
    }
}
