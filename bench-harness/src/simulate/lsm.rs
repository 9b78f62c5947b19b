//! The LSM model: which keys each table holds and how many bytes that takes (the SSTable
//! layout of `docs/formats/sstable.md`, prefix compression included); every decision (when to
//! compact, what, whether a move is trivial) is `lsm_engine::compaction_policy`'s, the picker
//! the engine's compaction manager calls.

use lsm_engine::LsmOptions;
use lsm_engine::compaction_policy::{self, Choice, Grandparent, OutputCutter};

use super::{Model, Sample, Stream};

/// Framing of a WAL batch record of one put: record header (9), batch header (20), op kind and
/// two length varints (3).
const WAL_OVERHEAD: u64 = 32;
/// Bytes of the table footer.
const FOOTER: u64 = 64;
/// Bytes of a block trailer (kind + CRC).
const TRAILER: u64 = 5;
/// Bytes of an internal key's trailer (sequence number and kind).
const SEQ: u64 = 8;

/// A modelled table: its distinct keys in order and its size.
#[derive(Clone, Debug)]
struct Table {
    number: u64,
    keys: Vec<u64>,
    entries: u64,
    size: u64,
}

/// The LSM under the simulator.
pub struct LsmModel {
    opts: LsmOptions,
    key_size: u64,
    value_size: u64,
    /// L0 newest first, deeper levels in key order.
    levels: Vec<Vec<Table>>,
    mem: Vec<u64>,
    mem_bytes: u64,
    next_number: u64,
    written: Vec<bool>,
    s: Sample,
}

impl LsmModel {
    /// An empty LSM with `opts`, for keys and values shaped as `stream`'s.
    pub fn new(opts: LsmOptions, stream: &Stream) -> LsmModel {
        let levels = vec![Vec::new(); opts.num_levels.max(2)];
        LsmModel {
            opts,
            key_size: stream.key_size as u64,
            value_size: stream.value_size as u64,
            levels,
            mem: Vec::new(),
            mem_bytes: 0,
            next_number: 1,
            written: vec![false; usize::try_from(stream.keys).unwrap_or(0)],
            s: Sample::default(),
        }
    }

    /// Seals the memtable into an L0 table, then runs every compaction the picker finds due.
    pub fn flush(&mut self) {
        if self.mem.is_empty() {
            return;
        }
        let mut keys = std::mem::take(&mut self.mem);
        let entries = keys.len() as u64;
        keys.sort_unstable();
        keys.dedup();
        let table = self.table(keys, entries);
        self.s.background_bytes += table.size;
        self.levels[0].insert(0, table);
        self.mem_bytes = 0;
        while let Some(choice) = self.next_choice() {
            self.compact(&choice);
        }
    }

    /// Tables per level: what `kv inspect` would list.
    pub fn level_files(&self) -> Vec<usize> {
        self.levels.iter().map(Vec::len).collect()
    }

    fn next_choice(&self) -> Option<Choice> {
        let described: Vec<Vec<compaction_policy::Table>> = self
            .levels
            .iter()
            .map(|level| level.iter().map(|t| self.describe(t)).collect())
            .collect();
        compaction_policy::next_compaction(&described, &self.opts)
    }

    fn describe(&self, t: &Table) -> compaction_policy::Table {
        let key = |k: Option<&u64>| key_bytes(k.copied().unwrap_or(0), self.key_size);
        compaction_policy::Table {
            number: t.number,
            size: t.size,
            entries: t.entries,
            smallest: key(t.keys.first()),
            largest: key(t.keys.last()),
        }
    }

    fn take(&mut self, level: usize, numbers: &[u64]) -> Vec<Table> {
        let (taken, kept) = std::mem::take(&mut self.levels[level])
            .into_iter()
            .partition(|t| numbers.contains(&t.number));
        self.levels[level] = kept;
        taken
    }

    fn compact(&mut self, c: &Choice) {
        self.s.jobs += 1;
        let mut inputs = self.take(c.level, &c.inputs);
        inputs.extend(self.take(c.output_level, &c.next_inputs));
        let outputs = if c.trivial_move {
            inputs
        } else {
            let mut keys: Vec<u64> = inputs.into_iter().flat_map(|t| t.keys).collect();
            keys.sort_unstable();
            keys.dedup();
            let outputs = self.cut(keys, c.output_level);
            self.s.background_bytes += outputs.iter().map(|t| t.size).sum::<u64>();
            outputs
        };
        let level = &mut self.levels[c.output_level];
        level.extend(outputs);
        level.sort_by_key(|t| t.keys.first().copied());
    }

    /// The tables of the level below `output_level` that keys `lo..=hi` overlap, in key
    /// order, as the engine hands them to its output cutter.
    fn grandparents(&self, output_level: usize, lo: u64, hi: u64) -> Vec<Grandparent<u64>> {
        self.levels
            .get(output_level + 1)
            .into_iter()
            .flatten()
            .filter_map(|t| Some((*t.keys.first()?, *t.keys.last()?, t.size)))
            .filter(|&(a, b, _)| a <= hi && lo <= b)
            .map(|(smallest, largest, size)| Grandparent {
                smallest,
                largest,
                size,
            })
            .collect()
    }

    /// Compaction outputs, cut where the engine's `OutputCutter` cuts them.
    fn cut(&mut self, keys: Vec<u64>, output_level: usize) -> Vec<Table> {
        let (lo, hi) = (keys.first().copied(), keys.last().copied());
        let gps = match (lo, hi) {
            (Some(lo), Some(hi)) => self.grandparents(output_level, lo, hi),
            _ => Vec::new(),
        };
        let mut cutter = OutputCutter::new(self.opts.target_file_bytes, gps);
        let mut out = Vec::new();
        let mut current = Vec::new();
        let mut bytes = 0u64;
        let mut prev = None;
        for k in keys {
            let size = (!current.is_empty()).then_some(bytes);
            if cutter.cut_before(&k, size) {
                let entries = current.len() as u64;
                out.push(self.table(std::mem::take(&mut current), entries));
                bytes = 0;
                prev = None;
            }
            bytes += self.entry_bytes(prev, k, current.len());
            current.push(k);
            prev = Some(k);
        }
        if !current.is_empty() {
            let entries = current.len() as u64;
            out.push(self.table(current, entries));
        }
        out
    }

    fn table(&mut self, keys: Vec<u64>, entries: u64) -> Table {
        let size = self.table_bytes(&keys, entries);
        let number = self.next_number;
        self.next_number += 1;
        Table {
            number,
            keys,
            entries,
            size,
        }
    }

    /// Bytes of one data-block entry (`shared | unshared | value_len | key suffix | value`).
    fn entry_bytes(&self, prev: Option<u64>, key: u64, at: usize) -> u64 {
        let restart = self.opts.block_restart_interval.max(1);
        let shared = match prev {
            Some(p) if !at.is_multiple_of(restart) => shared_digits(p, key, self.key_size),
            _ => 0,
        };
        3 + self.key_size + SEQ - shared + self.value_size
    }

    /// Bytes of a table of `keys` holding `entries` versions (extra versions of a key share
    /// its whole user key), with restarts, block trailers, index, filter, properties, footer.
    fn table_bytes(&self, keys: &[u64], entries: u64) -> u64 {
        let mut data = 0u64;
        let mut prev = None;
        for (at, &k) in keys.iter().enumerate() {
            data += self.entry_bytes(prev, k, at);
            prev = Some(k);
        }
        data += entries.saturating_sub(keys.len() as u64) * (3 + SEQ + self.value_size);
        let blocks = data.div_ceil(self.opts.block_bytes as u64).max(1);
        let restarts = entries.div_ceil(self.opts.block_restart_interval as u64) + blocks;
        data += 4 * (restarts + blocks) + TRAILER * blocks;
        let index = blocks * (3 + self.key_size + SEQ + 4 + 8) + 4 + TRAILER;
        let bits = keys.len() as u64 * u64::from(self.opts.bloom_bits_per_key);
        let filter = bits.div_ceil(512) * 64 + 5 + TRAILER;
        let props = 2 * (1 + self.key_size + SEQ) + 16 + TRAILER;
        data + index + filter + props + FOOTER
    }
}

impl Model for LsmModel {
    fn write(&mut self, index: u64) {
        let user = self.key_size + self.value_size;
        self.s.writes += 1;
        self.s.user_bytes += user;
        self.s.log_bytes += user + WAL_OVERHEAD;
        if let Some(w) = usize::try_from(index)
            .ok()
            .and_then(|i| self.written.get_mut(i))
            && !*w
        {
            *w = true;
            self.s.live_keys += 1;
        }
        self.mem.push(index);
        self.mem_bytes += user;
        if self.mem_bytes >= self.opts.memtable_bytes as u64 {
            self.flush();
        }
    }

    fn sample(&self) -> Sample {
        Sample {
            disk_bytes: self.levels.iter().flatten().map(|t| t.size).sum(),
            ..self.s
        }
    }
}

/// Key `index` as the zero-padded decimal the stream writes.
fn key_bytes(index: u64, width: u64) -> Vec<u8> {
    format!(
        "{index:0width$}",
        width = usize::try_from(width).unwrap_or(16)
    )
    .into_bytes()
}

/// Leading bytes two zero-padded decimal keys share.
fn shared_digits(a: u64, b: u64, width: u64) -> u64 {
    let (mut a, mut b, mut differing) = (a, b, 0u64);
    while a != b {
        a /= 10;
        b /= 10;
        differing += 1;
    }
    width.saturating_sub(differing)
}

#[cfg(test)]
mod tests {
    use super::shared_digits;

    #[test]
    fn shared_prefix_of_padded_decimals() {
        assert_eq!(shared_digits(1234, 1239, 16), 15);
        assert_eq!(shared_digits(1234, 1334, 16), 13);
        assert_eq!(shared_digits(7, 7, 16), 16);
    }
}
