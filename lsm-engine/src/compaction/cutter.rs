//! Where a compaction cuts its outputs: policy, pure (no I/O), so the simulator runs it too.
//!
//! Cutting at the target size alone makes every output of level N straddle the boundaries of
//! the files of level N+1 (the grandparents) at random: when that output is later pushed down,
//! it drags in the two grandparents it half-covers at its ends. RocksDB's
//! `level_compaction_dynamic_file_size` (on by default) aligns outputs to grandparent boundaries
//! instead, and so does this cutter:
//! - an output is cut before a key that crosses a grandparent boundary once the output holds
//!   50 % of the target, the threshold rising 5 % per boundary already crossed (at most 90 %):
//!   the more boundaries an output has met, the likelier it meets another before the target;
//! - an output is cut before a key that would skip a whole grandparent worth more than an
//!   eighth of the target, so that grandparent is not rewritten for nothing later;
//! - an output is cut once it and the grandparents it overlaps reach `25 x target` (RocksDB's
//!   `max_compaction_bytes`): the compaction that pushes it down stays bounded;
//! - with grandparents, an output may grow to twice the target while it waits for a boundary;
//!   without them (the last level, or a resumed job, whose log does not record them) outputs
//!   are cut at the target, as before.
//!
//! Keys are compared with `Ord`, so the engine passes user keys and the simulator its own.

use std::borrow::Borrow;

/// A file of the level below the output level (a grandparent), in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grandparent<K> {
    /// Smallest user key.
    pub smallest: K,
    /// Largest user key.
    pub largest: K,
    /// Bytes on disk.
    pub size: u64,
}

/// The cutting state of one run of outputs (one subtask). Feed it each user key the outputs
/// receive, once and in order, before the key is written (keys compaction drops need not be).
#[derive(Clone, Debug)]
pub struct OutputCutter<K> {
    target: u64,
    grandparents: Vec<Grandparent<K>>,
    /// The grandparent the last key fell in or before.
    index: usize,
    /// The last key fell between grandparents (or before the first, or after the last).
    in_gap: bool,
    seen_key: bool,
    /// Boundaries crossed since the current output was opened.
    switched: u64,
    /// Bytes of grandparents the current output overlaps.
    overlapped: u64,
}

impl<K> OutputCutter<K> {
    /// A cutter for outputs of about `target` bytes above `grandparents` (sorted, disjoint).
    pub fn new(target: u64, grandparents: Vec<Grandparent<K>>) -> Self {
        OutputCutter {
            target: target.max(1),
            grandparents,
            index: 0,
            in_gap: true,
            seen_key: false,
            switched: 0,
            overlapped: 0,
        }
    }

    /// Whether to close the current output (of `size` bytes; `None` if none is open) before
    /// `key`, a user key greater than every key fed before. A `true` starts the next output's
    /// accounting at `key`.
    pub fn cut_before<Q>(&mut self, key: &Q, size: Option<u64>) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let before = self.overlapped;
        let crossed = self.advance(key);
        let cut = size.is_some_and(|s| self.should_cut(s, crossed, before));
        if cut {
            self.switched = 0;
            self.overlapped = self.overlap_here();
        }
        cut
    }

    fn should_cut(&self, size: u64, crossed: u64, before: u64) -> bool {
        if self.grandparents.is_empty() {
            return size >= self.target;
        }
        if size >= self.target.saturating_mul(2) {
            return true;
        }
        if crossed == 0 {
            return false;
        }
        let skippable = if self.in_gap { 2 } else { 3 };
        let skipped = self.overlapped.saturating_sub(before);
        let percent = 50 + (self.switched * 5).min(40);
        self.overlapped.saturating_add(size) > self.target.saturating_mul(25)
            || (crossed >= skippable && skipped > self.target / 8)
            || size >= self.target.div_ceil(100) * percent
    }

    /// Moves to the grandparent holding `key` (or the gap before the next); returns how many
    /// boundaries (a file's start or end) the step crossed.
    fn advance<Q>(&mut self, key: &Q) -> u64
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut crossed = 0;
        while let Some(g) = self.grandparents.get(self.index) {
            if self.in_gap {
                if key < g.smallest.borrow() {
                    break;
                }
                if self.seen_key {
                    crossed += 1;
                    self.overlapped += g.size;
                }
                self.in_gap = false;
            } else {
                if key <= g.largest.borrow() {
                    break;
                }
                if self.seen_key {
                    crossed += 1;
                }
                self.in_gap = true;
                self.index += 1;
            }
        }
        if !self.seen_key {
            self.overlapped = self.overlap_here();
        }
        self.seen_key = true;
        self.switched += crossed;
        crossed
    }

    fn overlap_here(&self) -> u64 {
        if self.in_gap {
            return 0;
        }
        self.grandparents.get(self.index).map_or(0, |g| g.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gp(lo: u64, hi: u64, size: u64) -> Grandparent<u64> {
        Grandparent {
            smallest: lo,
            largest: hi,
            size,
        }
    }

    /// Feeds keys `0..n`, each adding `bytes`; returns the first key of every output.
    fn cuts(c: &mut OutputCutter<u64>, n: u64, bytes: u64) -> Vec<u64> {
        let (mut size, mut starts) = (None::<u64>, Vec::new());
        for k in 0..n {
            if c.cut_before(&k, size) || size.is_none() {
                starts.push(k);
                size = Some(0);
            }
            size = size.map(|s| s + bytes);
        }
        starts
    }

    #[test]
    fn without_grandparents_outputs_are_cut_at_the_target() {
        let mut c = OutputCutter::new(100, Vec::new());
        assert_eq!(cuts(&mut c, 35, 10), vec![0, 10, 20, 30]);
    }

    #[test]
    fn outputs_are_cut_at_a_grandparent_boundary_past_half_the_target() {
        // Grandparents every 7 keys: [0,6] [7,13] [14,20] ...; 10 bytes a key, target 100.
        let gps = (0..10).map(|i| gp(i * 7, i * 7 + 6, 80)).collect();
        let mut c = OutputCutter::new(100, gps);
        let starts = cuts(&mut c, 70, 10);
        // 70 bytes at key 7 (>= 55 %): every output is exactly one grandparent's keys.
        assert_eq!(starts, (0..10).map(|i| i * 7).collect::<Vec<_>>());
    }

    #[test]
    fn an_output_waits_for_a_boundary_up_to_twice_the_target() {
        // One huge grandparent: no boundary until key 1000.
        let mut c = OutputCutter::new(100, vec![gp(0, 1000, 5000)]);
        assert_eq!(cuts(&mut c, 45, 10), vec![0, 20, 40]);
    }

    #[test]
    fn a_small_output_is_not_cut_at_a_boundary() {
        // Boundaries every 2 keys (20 bytes): the threshold is reached only at 55 % or more.
        let gps = (0..50).map(|i| gp(i * 2, i * 2 + 1, 10)).collect();
        let mut c = OutputCutter::new(100, gps);
        let starts = cuts(&mut c, 40, 10);
        assert!(starts.windows(2).all(|w| w[1] - w[0] >= 6), "{starts:?}");
        assert!(starts.iter().skip(1).all(|s| s % 2 == 0), "{starts:?}");
    }

    #[test]
    fn a_key_skipping_a_large_grandparent_cuts_the_output() {
        // Keys 0..3 then 10..: the keys skip grandparent [4,8] (size 50 > 100 / 8).
        let gps = vec![gp(0, 3, 40), gp(4, 8, 50), gp(9, 100, 40)];
        let mut c = OutputCutter::new(100, gps);
        assert!(!c.cut_before(&0, None));
        assert!(!c.cut_before(&1, Some(10)));
        assert!(c.cut_before(&10, Some(20)));
    }
}
