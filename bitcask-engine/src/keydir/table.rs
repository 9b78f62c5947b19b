//! One keydir shard: a compact open-addressing hash table.
//!
//! Memory per key is what the keydir is judged on, so the layout is packed by hand:
//! - `entries`: a dense `Vec` of 24-byte [`Entry`] (sequence, file, offset, length, key offset);
//! - `arena`: every key as `key_len (u16 LE) | key`, so a key costs 2 bytes over its length and
//!   no allocation of its own;
//! - `slots`: linear-probing slots of 4 bytes, `tag (8 bits) | entry index (24 bits)`; the tag is
//!   8 more bits of the hash, so a probe rarely touches an entry whose key differs.
//!
//! Removal swaps the last entry into the hole and shifts later slots back (no tombstones).
//! Vectors grow by 1/16 (not by doubling) and the slot array by 1/2 at 75% load (linear probing
//! slows sharply beyond), which keeps the overhead near 35 bytes per key. Memory goes back after
//! deletes too: the arena is rewritten once deleted keys make up 1/16 of it, the entries shrink
//! once less than 7/8 of them is used, and the slots are rebuilt at 65% load once it falls
//! below 45%.

use super::Loc;

const EMPTY: u32 = u32::MAX;
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// Most entries a shard holds (the slot index has 24 bits).
pub(crate) const MAX_ENTRIES: usize = INDEX_MASK as usize;
const MAX_LOAD_NUM: usize = 75;
/// Below this load (in percent) a removal rebuilds the slots at [`REBUILD_LOAD_NUM`]; growth
/// leaves the slots at 50%, so only deletes get there.
const MIN_LOAD_NUM: usize = 45;
const REBUILD_LOAD_NUM: usize = 65;
/// The arena is rewritten once deleted keys make up this fraction (1/n) of it...
const ARENA_GARBAGE_DIV: usize = 16;
/// ...and at least this many bytes (tiny shards are not worth the copy).
const MIN_GARBAGE: usize = 64;
/// Most keys [`Table::touch`] takes at once: enough misses in flight to cover a memory
/// latency, few enough for the loads to fit the CPU's reorder window.
pub(crate) const TOUCH: usize = 16;

#[derive(Clone, Copy, Debug)]
struct Entry {
    seq: u64,
    file: u32,
    offset: u32,
    len: u32,
    key_off: u32,
}

impl Entry {
    fn loc(&self) -> Loc {
        Loc {
            file: self.file,
            offset: self.offset,
            len: self.len,
            seq: self.seq,
        }
    }

    fn set(&mut self, loc: Loc) {
        self.seq = loc.seq;
        self.file = loc.file;
        self.offset = loc.offset;
        self.len = loc.len;
    }
}

/// A full shard or arena: the caller turns it into an error.
#[derive(Debug)]
pub(crate) struct Full;

#[derive(Default)]
pub(crate) struct Table {
    slots: Vec<u32>,
    entries: Vec<Entry>,
    arena: Vec<u8>,
    garbage: usize,
}

/// Where a probe for a key ended: the slot holding it, or the empty slot where it would go.
enum Probe {
    Found { slot: usize, index: usize },
    Vacant(usize),
}

impl Table {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes allocated: slots, entries and arena (capacities, not lengths).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.capacity() * 4
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.arena.capacity()
    }

    pub(crate) fn get(&self, hash: u64, key: &[u8]) -> Option<Loc> {
        match self.probe(hash, key) {
            Probe::Found { index, .. } => self.entries.get(index).map(Entry::loc),
            Probe::Vacant(_) => None,
        }
    }

    /// Loads, for each of up to [`TOUCH`] hashes, its home slot, then where the slot's tag
    /// matches the entry, then the start of that entry's key: plain loads, each stage for all
    /// keys before the next, so that their cache misses overlap instead of queueing one after
    /// another as separate probes would. A probe that follows finds them in cache. The value
    /// returned means nothing; pass it to `std::hint::black_box` so the loads are kept.
    pub(crate) fn touch(&self, hashes: &[u64]) -> u64 {
        let mut slots = [EMPTY; TOUCH];
        for (s, &h) in slots.iter_mut().zip(hashes) {
            *s = self.slots.get(self.home(h)).copied().unwrap_or(EMPTY);
        }
        let mut keys = [0u32; TOUCH];
        for ((k, &s), &h) in keys.iter_mut().zip(&slots).zip(hashes) {
            if s != EMPTY && s >> INDEX_BITS == tag_of(h) {
                *k = self
                    .entries
                    .get((s & INDEX_MASK) as usize)
                    .map_or(0, |e| e.key_off);
            }
        }
        keys.iter().fold(0, |acc, &k| {
            acc ^ u64::from(self.arena.get(k as usize).copied().unwrap_or(0))
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
            Probe::Found { slot, index } => {
                let old = self.entries.get(index).map(Entry::loc);
                match f(old) {
                    Some(new) => {
                        if let Some(e) = self.entries.get_mut(index) {
                            e.set(new);
                        }
                        Ok((old, old != Some(new)))
                    }
                    None => {
                        self.remove_at(slot, index, key.len());
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

    /// Calls `f` with every key and location.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&[u8], Loc)) {
        for e in &self.entries {
            f(self.key_at(e.key_off), e.loc());
        }
    }

    /// Removes every entry for which `keep` is false.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Loc) -> bool) {
        let doomed: Vec<Vec<u8>> = self
            .entries
            .iter()
            .filter(|e| !keep(&e.loc()))
            .map(|e| self.key_at(e.key_off).to_vec())
            .collect();
        for key in doomed {
            self.remove(super::hash(&key), &key);
        }
    }

    fn key_at(&self, off: u32) -> &[u8] {
        let off = off as usize;
        let len = self
            .arena
            .get(off..off + 2)
            .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
        self.arena.get(off + 2..off + 2 + len).unwrap_or_default()
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
            if s >> INDEX_BITS == tag {
                let index = (s & INDEX_MASK) as usize;
                let same = self
                    .entries
                    .get(index)
                    .is_some_and(|e| self.key_at(e.key_off) == key);
                if same {
                    return Probe::Found { slot, index };
                }
            }
            slot = if slot + 1 == n { 0 } else { slot + 1 };
        }
    }

    /// Adds a key the probe did not find; `vacant` is where the probe ended.
    fn add(&mut self, hash: u64, key: &[u8], loc: Loc, vacant: usize) -> Result<(), Full> {
        if self.entries.len() >= MAX_ENTRIES {
            return Err(Full);
        }
        let mut slot = vacant;
        if (self.entries.len() + 1) * 100 > self.slots.len() * MAX_LOAD_NUM {
            self.grow_slots();
            slot = self.vacant_slot(hash);
        }
        let key_off = u32::try_from(self.arena.len()).map_err(|_| Full)?;
        let key_len = u16::try_from(key.len()).map_err(|_| Full)?;
        reserve_by_sixteenth(&mut self.arena, 2 + key.len());
        self.arena.extend_from_slice(&key_len.to_le_bytes());
        self.arena.extend_from_slice(key);
        reserve_by_sixteenth(&mut self.entries, 1);
        let index = self.entries.len();
        let mut entry = Entry {
            seq: 0,
            file: 0,
            offset: 0,
            len: 0,
            key_off,
        };
        entry.set(loc);
        self.entries.push(entry);
        if let Some(s) = self.slots.get_mut(slot) {
            *s = pack(hash, index);
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

    /// Makes room for `entries` keys of `arena_bytes` arena bytes in all, without growing
    /// step by step (open knows how many keys its files hold).
    pub(crate) fn reserve(&mut self, entries: usize, arena_bytes: usize) {
        self.entries
            .reserve_exact(entries.saturating_sub(self.entries.len()));
        self.arena
            .reserve_exact(arena_bytes.saturating_sub(self.arena.len()));
        if entries * 100 > self.slots.len() * MAX_LOAD_NUM {
            self.rebuild_slots(entries * 10 / 7 + 1);
        }
    }

    /// Gives back what a generous [`Table::reserve`] did not use.
    pub(crate) fn shrink(&mut self) {
        let n = self.entries.len();
        self.entries.shrink_to(n + n / 32);
        self.arena
            .shrink_to(self.arena.len() + self.arena.len() / 16);
        if n * 100 < self.slots.len() * 35 {
            self.rebuild_slots((n * 10 / 7 + 1).max(16));
        }
    }

    fn grow_slots(&mut self) {
        self.rebuild_slots((self.slots.len() * 3 / 2).max(16));
    }

    fn rebuild_slots(&mut self, n: usize) {
        self.slots = vec![EMPTY; n];
        for index in 0..self.entries.len() {
            let hash = match self.entries.get(index) {
                Some(e) => super::hash(self.key_at(e.key_off)),
                None => continue,
            };
            let slot = self.vacant_slot(hash);
            if let Some(s) = self.slots.get_mut(slot) {
                *s = pack(hash, index);
            }
        }
    }

    /// Removes the entry at `index`, found at `slot`.
    fn remove_at(&mut self, slot: usize, index: usize, key_len: usize) {
        self.clear_slot(slot);
        let last = self.entries.len() - 1;
        if index != last {
            // The last entry moves into the hole: repoint its slot.
            let moved_hash = self
                .entries
                .get(last)
                .map(|e| super::hash(self.key_at(e.key_off)));
            if let Some(hash) = moved_hash {
                self.repoint(hash, last, index);
            }
        }
        self.entries.swap_remove(index);
        self.garbage += 2 + key_len;
        if self.entries.is_empty() {
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
        let n = self.entries.len();
        if self.garbage > MIN_GARBAGE && self.garbage * ARENA_GARBAGE_DIV > self.arena.len() {
            self.compact_arena();
        }
        if n * 8 < self.entries.capacity() * 7 {
            self.entries.shrink_to(n + n / 32);
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
            let home = self
                .entries
                .get((s & INDEX_MASK) as usize)
                .map_or(next, |e| self.home(super::hash(self.key_at(e.key_off))));
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

    fn repoint(&mut self, hash: u64, from: usize, to: usize) {
        let n = self.slots.len();
        let mut slot = self.home(hash);
        for _ in 0..n {
            match self.slots.get_mut(slot) {
                Some(s) if *s != EMPTY && (*s & INDEX_MASK) as usize == from => {
                    *s = pack(hash, to);
                    return;
                }
                Some(s) if *s == EMPTY => return,
                _ => {}
            }
            slot = if slot + 1 == n { 0 } else { slot + 1 };
        }
    }

    fn compact_arena(&mut self) {
        let live: usize = self.arena.len() - self.garbage;
        // A little room for the next keys: growth by a sixteenth takes over when it fills.
        let mut arena = Vec::with_capacity(live + live / 64);
        for e in &mut self.entries {
            let off = e.key_off as usize;
            let len = self
                .arena
                .get(off..off + 2)
                .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
            // Offsets fit: the new arena is smaller than the old one.
            e.key_off = u32::try_from(arena.len()).unwrap_or(u32::MAX);
            arena.extend_from_slice(self.arena.get(off..off + 2 + len).unwrap_or_default());
        }
        self.arena = arena;
        self.garbage = 0;
    }
}

fn tag_of(hash: u64) -> u32 {
    ((hash >> 48) & 0xff) as u32
}

fn pack(hash: u64, index: usize) -> u32 {
    (tag_of(hash) << INDEX_BITS) | (index as u32 & INDEX_MASK)
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
