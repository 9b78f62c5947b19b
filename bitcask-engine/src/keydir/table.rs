//! One keydir shard: a compact open-addressing hash table.
//!
//! Memory per key is what the keydir is judged on, and cache misses per look-up are what a
//! write at 20 M keys is judged on, so the layout is packed by hand:
//! - `arena`: one record per key, `seq (u64) | file (u32) | offset (u32) | len (u32) |
//!   key_len (u16) | flags (u16) | key`, padded to 8 bytes, all LE; a key costs 24 bytes plus
//!   padding over its length and no allocation of its own;
//! - `slots`: linear-probing slots of 4 bytes, `tag (8 bits) | record offset in 8-byte units
//!   (24 bits)`; the tag is 8 more bits of the hash, so a probe rarely touches a record whose
//!   key differs.
//!
//! A look-up is two dependent cache misses, the slot and then the record, whose key and
//! location share it (a separate entry array between them was a third: at 20 M keys the
//! keydir is 1 GB and each miss, TLB walk included, costs ~0.4 us).
//!
//! Removal flags the record dead and shifts later slots back (no tombstones in the slots).
//! The arena grows by 1/16 (not by doubling) and the slot array by 1/2 at 75% load (linear
//! probing slows sharply beyond), which keeps the overhead near 35 bytes per key. Memory goes
//! back after deletes too: the arena is rewritten (and the slots rebuilt) once dead records
//! make up 1/16 of it, and the slots are rebuilt at 65% load once it falls below 45%.

use super::Loc;

const EMPTY: u32 = u32::MAX;
const OFFSET_BITS: u32 = 24;
const OFFSET_MASK: u32 = (1 << OFFSET_BITS) - 1;
/// Records start on multiples of this many bytes; slots hold offsets in these units.
const UNIT: usize = 8;
/// Most arena bytes a shard holds: every record starts below unit `OFFSET_MASK` (a record at
/// `OFFSET_MASK` with tag `0xff` would read as [`EMPTY`]). 128 MiB per shard, 32 GiB in all.
pub(crate) const MAX_ARENA_BYTES: usize = OFFSET_MASK as usize * UNIT;
/// Bytes of a record before its key.
pub(crate) const HEADER: usize = 24;
/// The record's flag: removed (its bytes are garbage until the arena is rewritten).
const DEAD: u16 = 1;
const MAX_LOAD_NUM: usize = 75;
/// Below this load (in percent) a removal rebuilds the slots at [`REBUILD_LOAD_NUM`]; growth
/// leaves the slots at 50%, so only deletes get there.
const MIN_LOAD_NUM: usize = 45;
const REBUILD_LOAD_NUM: usize = 65;
/// The arena is rewritten once dead records make up this fraction (1/n) of it...
const ARENA_GARBAGE_DIV: usize = 16;
/// ...and at least this many bytes (tiny shards are not worth the copy).
const MIN_GARBAGE: usize = 64;
/// Most keys [`Table::touch`] takes at once: enough misses in flight to cover a memory
/// latency, few enough for the loads to fit the CPU's reorder window.
pub(crate) const TOUCH: usize = 16;

/// A full shard or arena: the caller turns it into an error.
#[derive(Debug)]
pub(crate) struct Full;

#[derive(Default)]
pub(crate) struct Table {
    slots: Vec<u32>,
    arena: Vec<u8>,
    /// Live records.
    count: usize,
    /// Bytes of dead records in the arena.
    garbage: usize,
}

/// Where a probe for a key ended: the slot holding it (and the record's byte offset), or the
/// empty slot where it would go.
enum Probe {
    Found { slot: usize, off: usize },
    Vacant(usize),
}

/// Bytes a record of a `key_len`-byte key takes in the arena, padding included.
pub(crate) fn record_size(key_len: usize) -> usize {
    (HEADER + key_len).next_multiple_of(UNIT)
}

impl Table {
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Bytes allocated: slots and arena (capacities, not lengths).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.capacity() * 4 + self.arena.capacity()
    }

    pub(crate) fn get(&self, hash: u64, key: &[u8]) -> Option<Loc> {
        match self.probe(hash, key) {
            Probe::Found { off, .. } => self.loc_at(off),
            Probe::Vacant(_) => None,
        }
    }

    /// Loads, for each of up to [`TOUCH`] hashes, its home slot, then where the slot's tag
    /// matches the start of that record (its location and key): plain loads, each stage for
    /// all keys before the next, so that their cache misses overlap instead of queueing one
    /// after another as separate probes would. A probe that follows finds them in cache. The
    /// value returned means nothing; pass it to `std::hint::black_box` so the loads are kept.
    pub(crate) fn touch(&self, hashes: &[u64]) -> u64 {
        let mut slots = [EMPTY; TOUCH];
        for (s, &h) in slots.iter_mut().zip(hashes) {
            *s = self.slots.get(self.home(h)).copied().unwrap_or(EMPTY);
        }
        slots.iter().zip(hashes).fold(0, |acc, (&s, &h)| {
            if s == EMPTY || s >> OFFSET_BITS != tag_of(h) {
                return acc;
            }
            let off = offset_of(s);
            let first = self.arena.get(off).copied().unwrap_or(0);
            let key = self.arena.get(off + HEADER).copied().unwrap_or(0);
            acc ^ u64::from(first) ^ u64::from(key)
        })
    }

    /// Sets `key` to `loc`; returns the location it replaced.
    pub(crate) fn insert(&mut self, hash: u64, key: &[u8], loc: Loc) -> Result<Option<Loc>, Full> {
        self.update(hash, key, |_| Some(loc)).map(|(old, _)| old)
    }

    /// The general update: `f` sees the current location and returns the new one (`None`
    /// removes the key). Returns the old location and whether anything changed.
    pub(crate) fn update(
        &mut self,
        hash: u64,
        key: &[u8],
        f: impl FnOnce(Option<Loc>) -> Option<Loc>,
    ) -> Result<(Option<Loc>, bool), Full> {
        match self.probe(hash, key) {
            Probe::Found { slot, off } => {
                let old = self.loc_at(off);
                match f(old) {
                    Some(new) => {
                        self.set_loc(off, new);
                        Ok((old, old != Some(new)))
                    }
                    None => {
                        self.remove_at(slot, off, key.len());
                        Ok((old, true))
                    }
                }
            }
            Probe::Vacant(slot) => match f(None) {
                None => Ok((None, false)),
                Some(new) => {
                    self.add(hash, key, new, slot)?;
                    Ok((None, true))
                }
            },
        }
    }

    pub(crate) fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Loc> {
        self.update(hash, key, |_| None)
            .ok()
            .and_then(|(old, _)| old)
    }

    /// Calls `f` with every key and location, in arena order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&[u8], Loc)) {
        self.for_each_record(|off| {
            if let Some(loc) = self.loc_at(off) {
                f(self.key_at(off), loc);
            }
        });
    }

    /// Calls `f` with the offset of every live record, in arena order.
    fn for_each_record(&self, mut f: impl FnMut(usize)) {
        let mut off = 0;
        while off < self.arena.len() {
            let (key_len, flags) = self.header_at(off);
            if flags & DEAD == 0 {
                f(off);
            }
            off += record_size(key_len);
        }
    }

    /// Removes every entry for which `keep` is false.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Loc) -> bool) {
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        self.for_each(|key, loc| {
            if !keep(&loc) {
                doomed.push(key.to_vec());
            }
        });
        for key in doomed {
            self.remove(super::hash(&key), &key);
        }
    }

    fn u16_at(&self, at: usize) -> u16 {
        self.arena
            .get(at..at + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(
            self.arena.get(at..at + 4)?.try_into().ok()?,
        ))
    }

    /// The key length and flags of the record at byte `off`.
    fn header_at(&self, off: usize) -> (usize, u16) {
        (usize::from(self.u16_at(off + 20)), self.u16_at(off + 22))
    }

    fn key_at(&self, off: usize) -> &[u8] {
        let len = usize::from(self.u16_at(off + 20));
        self.arena
            .get(off + HEADER..off + HEADER + len)
            .unwrap_or_default()
    }

    fn loc_at(&self, off: usize) -> Option<Loc> {
        Some(Loc {
            seq: u64::from_le_bytes(self.arena.get(off..off + 8)?.try_into().ok()?),
            file: self.u32_at(off + 8)?,
            offset: self.u32_at(off + 12)?,
            len: self.u32_at(off + 16)?,
        })
    }

    fn set_loc(&mut self, off: usize, loc: Loc) {
        if let Some(b) = self.arena.get_mut(off..off + 20) {
            b.copy_from_slice(&encode_loc(loc));
        }
    }

    fn set_flags(&mut self, off: usize, flags: u16) {
        if let Some(b) = self.arena.get_mut(off + 22..off + 24) {
            b.copy_from_slice(&flags.to_le_bytes());
        }
    }

    fn home(&self, hash: u64) -> usize {
        // Multiply-shift maps the low 32 bits onto any table size, not only powers of two.
        let low = hash & 0xffff_ffff;
        ((low * self.slots.len() as u64) >> 32) as usize
    }

    fn probe(&self, hash: u64, key: &[u8]) -> Probe {
        let n = self.slots.len();
        if n == 0 {
            return Probe::Vacant(0);
        }
        let tag = tag_of(hash);
        let mut slot = self.home(hash);
        loop {
            let s = self.slots.get(slot).copied().unwrap_or(EMPTY);
            if s == EMPTY {
                return Probe::Vacant(slot);
            }
            if s >> OFFSET_BITS == tag {
                let off = offset_of(s);
                if self.key_at(off) == key {
                    return Probe::Found { slot, off };
                }
            }
            slot = if slot + 1 == n { 0 } else { slot + 1 };
        }
    }

    /// Adds a key the probe did not find; `vacant` is where the probe ended.
    fn add(&mut self, hash: u64, key: &[u8], loc: Loc, vacant: usize) -> Result<(), Full> {
        let off = self.arena.len();
        let size = record_size(key.len());
        if off / UNIT >= OFFSET_MASK as usize {
            return Err(Full);
        }
        let key_len = u16::try_from(key.len()).map_err(|_| Full)?;
        let mut slot = vacant;
        if (self.count + 1) * 100 > self.slots.len() * MAX_LOAD_NUM {
            self.grow_slots();
            slot = self.vacant_slot(hash);
        }
        reserve_by_sixteenth(&mut self.arena, size);
        self.arena.extend_from_slice(&encode_loc(loc));
        self.arena.extend_from_slice(&key_len.to_le_bytes());
        self.arena.extend_from_slice(&0u16.to_le_bytes());
        self.arena.extend_from_slice(key);
        self.arena.resize(off + size, 0);
        self.count += 1;
        if let Some(s) = self.slots.get_mut(slot) {
            *s = pack(hash, off);
        }
        Ok(())
    }

    /// The first empty slot from `hash`'s home (for a key known to be absent).
    fn vacant_slot(&self, hash: u64) -> usize {
        let n = self.slots.len();
        let mut slot = self.home(hash);
        while self.slots.get(slot).is_some_and(|&s| s != EMPTY) {
            slot = if slot + 1 == n { 0 } else { slot + 1 };
        }
        slot
    }

    /// Makes room for `entries` keys of `arena_bytes` arena bytes in all (records, padding
    /// included), without growing step by step (open knows how many keys its files hold).
    pub(crate) fn reserve(&mut self, entries: usize, arena_bytes: usize) {
        self.arena
            .reserve_exact(arena_bytes.saturating_sub(self.arena.len()));
        if entries * 100 > self.slots.len() * MAX_LOAD_NUM {
            self.rebuild_slots(entries * 10 / 7 + 1);
        }
    }

    /// Gives back what a generous [`Table::reserve`] did not use.
    pub(crate) fn shrink(&mut self) {
        let n = self.count;
        self.arena
            .shrink_to(self.arena.len() + self.arena.len() / 16);
        if n * 100 < self.slots.len() * 35 {
            self.rebuild_slots((n * 10 / 7 + 1).max(16));
        }
    }

    fn grow_slots(&mut self) {
        self.rebuild_slots((self.slots.len() * 3 / 2).max(16));
    }

    /// New slots for every live record, in one pass over the arena (a second pass would
    /// stream it from memory again once it outgrows the cache).
    fn rebuild_slots(&mut self, n: usize) {
        self.slots = vec![EMPTY; n];
        let mut off = 0;
        while off < self.arena.len() {
            let (key_len, flags) = self.header_at(off);
            if flags & DEAD == 0 {
                let hash = super::hash(self.key_at(off));
                let slot = self.vacant_slot(hash);
                if let Some(s) = self.slots.get_mut(slot) {
                    *s = pack(hash, off);
                }
            }
            off += record_size(key_len);
        }
    }

    /// Removes the record at byte `off`, found at `slot`.
    fn remove_at(&mut self, slot: usize, off: usize, key_len: usize) {
        self.clear_slot(slot);
        self.set_flags(off, DEAD);
        self.count -= 1;
        self.garbage += record_size(key_len);
        if self.count == 0 {
            *self = Table::default();
        } else {
            self.give_back();
        }
    }

    /// After a removal, hands memory back once enough of it is unused, so that the bound of
    /// 40 bytes per live key beyond the key holds after mass deletes too. Each threshold sits
    /// well away from the matching growth step, so alternating puts and deletes do not
    /// rebuild every time: every rebuild or copy is paid for by a fraction of the entries.
    fn give_back(&mut self) {
        let n = self.count;
        if self.garbage > MIN_GARBAGE && self.garbage * ARENA_GARBAGE_DIV > self.arena.len() {
            self.compact_arena();
        }
        if n * 100 < self.slots.len() * MIN_LOAD_NUM {
            self.rebuild_slots((n * 100 / REBUILD_LOAD_NUM + 1).max(16));
        }
    }

    /// Backward-shift deletion: later slots of the same run move up so probes stay unbroken.
    fn clear_slot(&mut self, mut hole: usize) {
        let n = self.slots.len();
        let mut next = if hole + 1 == n { 0 } else { hole + 1 };
        loop {
            let s = self.slots.get(next).copied().unwrap_or(EMPTY);
            if s == EMPTY {
                break;
            }
            let home = self.home(super::hash(self.key_at(offset_of(s))));
            // `s` may fill the hole unless its home lies cyclically in (hole, next].
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = s;
                }
                hole = next;
            }
            next = if next + 1 == n { 0 } else { next + 1 };
        }
        if let Some(h) = self.slots.get_mut(hole) {
            *h = EMPTY;
        }
    }

    /// Copies the live records into a new arena and points the slots at their new places
    /// (rebuilt at the size they have: records move, keys and hashes do not).
    fn compact_arena(&mut self) {
        let live: usize = self.arena.len() - self.garbage;
        // A little room for the next keys: growth by a sixteenth takes over when it fills.
        let mut arena = Vec::with_capacity(live + live / 64);
        self.for_each_record(|off| {
            let size = record_size(self.header_at(off).0);
            arena.extend_from_slice(self.arena.get(off..off + size).unwrap_or_default());
        });
        self.arena = arena;
        self.garbage = 0;
        self.rebuild_slots(self.slots.len());
    }
}

fn tag_of(hash: u64) -> u32 {
    ((hash >> 48) & 0xff) as u32
}

/// The slot of a record at byte `off` (a multiple of [`UNIT`] below [`MAX_ARENA_BYTES`]).
fn pack(hash: u64, off: usize) -> u32 {
    (tag_of(hash) << OFFSET_BITS) | ((off / UNIT) as u32 & OFFSET_MASK)
}

/// The byte offset of the record a slot points at.
fn offset_of(slot: u32) -> usize {
    (slot & OFFSET_MASK) as usize * UNIT
}

fn encode_loc(loc: Loc) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&loc.seq.to_le_bytes());
    b[8..12].copy_from_slice(&loc.file.to_le_bytes());
    b[12..16].copy_from_slice(&loc.offset.to_le_bytes());
    b[16..].copy_from_slice(&loc.len.to_le_bytes());
    b
}

/// Grows a vector by a sixteenth of its size (at least `extra`), not by doubling: slower growth
/// wastes less of the memory the keydir is measured on.
fn reserve_by_sixteenth<T>(v: &mut Vec<T>, extra: usize) {
    if v.capacity() - v.len() < extra {
        let more = (v.capacity() / 16).max(extra).max(16);
        v.reserve_exact(more);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::hash;
    use super::*;

    fn loc(n: u32) -> Loc {
        Loc {
            file: n,
            offset: n * 2,
            len: n * 3,
            seq: u64::from(n) * 5,
        }
    }

    #[test]
    fn matches_a_hashmap_under_churn() {
        let mut t = Table::default();
        let mut model = HashMap::new();
        let mut x: u64 = 7;
        for i in 0..60_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("k{}", x % 5000).into_bytes();
            let h = hash(&key);
            if x.is_multiple_of(3) {
                assert_eq!(t.remove(h, &key), model.remove(&key));
            } else {
                assert_eq!(
                    t.insert(h, &key, loc(i)).unwrap(),
                    model.insert(key.clone(), loc(i))
                );
            }
            if i % 5000 == 0 {
                for (k, v) in &model {
                    assert_eq!(t.get(hash(k), k), Some(*v));
                }
            }
        }
        assert_eq!(t.len(), model.len());
        let mut seen = 0;
        t.for_each(|k, l| {
            assert_eq!(model.get(k), Some(&l));
            seen += 1;
        });
        assert_eq!(seen, model.len());
    }

    /// Keys of every length from 1 to 300 bytes (records of every padding), removed and
    /// re-added until the arena is rewritten several times: look-ups, the walk and the
    /// slot rebuilds all agree with a model.
    #[test]
    fn keys_of_any_length_survive_arena_rewrites() {
        let mut t = Table::default();
        let mut model = HashMap::new();
        let key = |i: u32| vec![(i % 251) as u8; 1 + (i as usize * 7) % 300];
        for round in 0..6u32 {
            for i in 0..2000u32 {
                let k = key(i);
                if (i + round) % 3 == 0 {
                    assert_eq!(t.remove(hash(&k), &k), model.remove(&k), "key {i}");
                } else {
                    let l = loc(i + round);
                    assert_eq!(t.insert(hash(&k), &k, l).unwrap(), model.insert(k, l));
                }
            }
            assert_eq!(t.len(), model.len());
            for (k, v) in &model {
                assert_eq!(t.get(hash(k), k), Some(*v));
            }
            let mut walked = HashMap::new();
            t.for_each(|k, l| {
                walked.insert(k.to_vec(), l);
            });
            assert_eq!(walked, model, "round {round}");
        }
    }

    #[test]
    fn retain_and_empty() {
        let mut t = Table::default();
        for i in 0..1000u32 {
            let key = i.to_le_bytes();
            t.insert(hash(&key), &key, loc(i)).unwrap();
        }
        t.retain(|l| l.file % 2 == 0);
        assert_eq!(t.len(), 500);
        t.retain(|_| false);
        assert_eq!(t.len(), 0);
        assert_eq!(t.memory_bytes(), 0);
    }
}
