//! Compaction policy: pure functions of a summary of the levels and of the running jobs'
//! reservations, so they can be unit-tested and simulated without any files.
//!
//! - Level targets follow RocksDB's dynamic level bytes: the largest level's size sets the last
//!   level's target, each level above gets a `multiplier`-th of the one below, and the base level
//!   (where L0 compacts into) is the highest whose target still exceeds `base_bytes /
//!   multiplier`, but never deeper than the first non-empty level below L0: L0 always lands on
//!   top of everything older (RocksDB keeps the same invariant). When the tree is reshaped under
//!   the picker (the largest level shrinks after mass deletes, or the engine is reopened with a
//!   larger `max_bytes_for_level_base` or `num_levels`), the base stays at the data; a base
//!   computed from the largest level alone would let an L0 job write newer versions below
//!   older ones still sitting in a level above it (reads would return the older value, and a
//!   tombstone dropped at the bottom would bring a deleted key back for good). No target is
//!   below `base_bytes`; levels above the base stay empty.
//! - Scores: L0 = files not being compacted / `l0_trigger`; deeper levels = bytes not being
//!   compacted / target; the last level is never scored by size. A level is due at 1.0.
//! - Picks: the highest-scoring due level that can run beside the running jobs. L0 goes whole
//!   to the base level (one such job at a time: L0 files overlap). A deeper level gives the file
//!   with the smallest overlap with the next level (RocksDB's `kMinOverlappingRatio`). A pick
//!   whose inputs overlap nothing below is a trivial move (a manifest edit, no rewrite).
//! - Deletion-triggered picks, when nothing is due by size: a tombstone-dense file of a level
//!   above the last is pushed down; a tombstone-dense file of the last level whose every entry
//!   is at or below the snapshot cutoff is rewritten in place, which drops its tombstones and
//!   the versions they delete (RocksDB's bottommost-file compaction). The cutoff condition
//!   keeps this from rewriting the same file again and again while a snapshot holds it.
//! - Reservations: a job reserves (level, user-key range) for its input level and its output
//!   level; a pick is refused if it intersects a reservation on either level or uses a file
//!   another job holds.

use std::collections::HashSet;

use super::TaskInput;
use super::cutter::Grandparent;
use crate::version::{Version, largest_user, smallest_user};

/// What the picker knows about a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileSummary {
    pub(crate) number: u64,
    pub(crate) size: u64,
    pub(crate) entries: u64,
    pub(crate) tombstones: u64,
    /// The newest sequence number in the table.
    pub(crate) max_seq: u64,
    /// Smallest and largest user keys.
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
}

/// The levels of a version as summaries, in the version's order (L0 newest first).
pub(crate) fn summarize(version: &Version) -> Vec<Vec<FileSummary>> {
    version
        .levels()
        .iter()
        .map(|level| {
            level
                .iter()
                .map(|t| FileSummary {
                    number: t.number(),
                    size: t.size(),
                    entries: t.props().entries,
                    tombstones: t.props().tombstones,
                    max_seq: t.props().max_seq,
                    smallest: smallest_user(t).to_vec(),
                    largest: largest_user(t).to_vec(),
                })
                .collect()
        })
        .collect()
}

/// The leveled-compaction settings the picker needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LevelConfig {
    pub(crate) l0_trigger: usize,
    pub(crate) base_bytes: u64,
    pub(crate) multiplier: u64,
}

/// An inclusive user-key range; `None` bounds are unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) lo: Option<Vec<u8>>,
    pub(crate) hi: Option<Vec<u8>>,
}

impl Range {
    pub(crate) fn all() -> Range {
        Range { lo: None, hi: None }
    }

    /// The range spanning `files` (which must not be empty: an empty list gives every key).
    pub(crate) fn of(files: &[&FileSummary]) -> Range {
        Range {
            lo: files.iter().map(|f| f.smallest.clone()).min(),
            hi: files.iter().map(|f| f.largest.clone()).max(),
        }
    }

    /// The range of `self` and `files` together.
    fn widen(&self, files: &[&FileSummary]) -> Range {
        if files.is_empty() {
            self.clone()
        } else {
            self.union(&Range::of(files))
        }
    }

    fn union(&self, other: &Range) -> Range {
        let lo = match (&self.lo, &other.lo) {
            (Some(a), Some(b)) => Some(a.min(b).clone()),
            _ => None,
        };
        let hi = match (&self.hi, &other.hi) {
            (Some(a), Some(b)) => Some(a.max(b).clone()),
            _ => None,
        };
        Range { lo, hi }
    }

    pub(crate) fn intersects(&self, other: &Range) -> bool {
        let below = |hi: &Option<Vec<u8>>, lo: &Option<Vec<u8>>| match (hi, lo) {
            (Some(h), Some(l)) => h < l,
            _ => false,
        };
        !below(&self.hi, &other.lo) && !below(&other.hi, &self.lo)
    }

    fn holds(&self, f: &FileSummary) -> bool {
        self.intersects(&Range {
            lo: Some(f.smallest.clone()),
            hi: Some(f.largest.clone()),
        })
    }
}

/// A running job's claim on part of a level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub(crate) job: u64,
    pub(crate) level: usize,
    pub(crate) range: Range,
}

/// Level targets and scores of a version.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Shape {
    pub(crate) base_level: usize,
    pub(crate) targets: Vec<u64>,
    pub(crate) scores: Vec<f64>,
    /// Bytes over target, summed over levels (RocksDB's pending compaction bytes, roughly).
    pub(crate) debt_bytes: u64,
}

/// Level targets under dynamic level bytes: `(base level, target per level)`.
pub(crate) fn targets(level_bytes: &[u64], cfg: &LevelConfig) -> (usize, Vec<u64>) {
    let n = level_bytes.len();
    let mut t = vec![0u64; n];
    let Some(last) = n.checked_sub(1).filter(|&l| l >= 1) else {
        return (0, t);
    };
    let mult = cfg.multiplier.max(2);
    let largest = level_bytes.iter().skip(1).copied().max().unwrap_or(0);
    let mut base = last;
    if let Some(slot) = t.get_mut(last) {
        *slot = largest.max(cfg.base_bytes);
    }
    while base > 1 {
        let up = t.get(base).copied().unwrap_or(0) / mult;
        if up <= cfg.base_bytes / mult {
            break;
        }
        base -= 1;
        if let Some(slot) = t.get_mut(base) {
            *slot = up;
        }
    }
    if let Some(first) = first_non_empty(level_bytes) {
        base = base.min(first);
    }
    for slot in t.iter_mut().skip(base) {
        *slot = (*slot).max(cfg.base_bytes);
    }
    (base, t)
}

/// The first level below L0 holding data.
fn first_non_empty(level_bytes: &[u64]) -> Option<usize> {
    level_bytes
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(n, &b)| (b > 0).then_some(n))
}

fn ratio(a: u64, b: u64) -> f64 {
    engine_api::ratio(a, b)
}

/// Targets, scores and debt of `levels`, not counting files in `busy` toward the scores.
pub(crate) fn shape(levels: &[Vec<FileSummary>], busy: &HashSet<u64>, cfg: &LevelConfig) -> Shape {
    let bytes: Vec<u64> = levels
        .iter()
        .map(|l| l.iter().map(|f| f.size).sum())
        .collect();
    let (base_level, targets) = targets(&bytes, cfg);
    let last = levels.len().saturating_sub(1);
    let mut scores = vec![0.0; levels.len()];
    let mut debt_bytes = 0;
    for (n, level) in levels.iter().enumerate() {
        let idle: Vec<&FileSummary> = level.iter().filter(|f| !busy.contains(&f.number)).collect();
        let idle_bytes: u64 = idle.iter().map(|f| f.size).sum();
        let target = targets.get(n).copied().unwrap_or(0);
        let score = if n == 0 {
            ratio(idle.len() as u64, cfg.l0_trigger.max(1) as u64)
        } else if n == last {
            0.0
        } else {
            ratio(idle_bytes, target.max(1))
        };
        if n == 0 {
            if level.len() >= cfg.l0_trigger {
                debt_bytes += bytes.first().copied().unwrap_or(0);
            }
        } else if n < last {
            debt_bytes += bytes.get(n).copied().unwrap_or(0).saturating_sub(target);
        }
        if let Some(slot) = scores.get_mut(n) {
            *slot = score;
        }
    }
    Shape {
        base_level,
        targets,
        scores,
        debt_bytes,
    }
}

/// A compaction chosen by the picker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pick {
    /// The level the inputs come from.
    pub(crate) level: usize,
    pub(crate) output_level: usize,
    /// Inputs from `level`, newest first for L0.
    pub(crate) inputs: Vec<FileSummary>,
    /// Inputs from `output_level`, in key order.
    pub(crate) next_inputs: Vec<FileSummary>,
    /// True when the one input overlaps nothing in the output level: move it, do not rewrite.
    pub(crate) trivial_move: bool,
    /// What the job reserves: (level, range) for the input and the output level.
    pub(crate) reserve: Vec<(usize, Range)>,
}

impl Pick {
    /// The task inputs: sources newest first (input level, then output level).
    pub(crate) fn task_inputs(&self) -> Vec<TaskInput> {
        let level = |l: usize| u32::try_from(l).unwrap_or(u32::MAX);
        self.inputs
            .iter()
            .map(|f| TaskInput {
                number: f.number,
                level: level(self.level),
            })
            .chain(self.next_inputs.iter().map(|f| TaskInput {
                number: f.number,
                level: level(self.output_level),
            }))
            .collect()
    }
}

fn free(res: &[Reservation], level: usize, range: &Range) -> bool {
    !res.iter()
        .any(|r| r.level == level && r.range.intersects(range))
}

/// The next compaction to start beside the running jobs, if any level is due and one fits.
/// `cutoff` is the oldest sequence number a snapshot or read can see (`seq_cutoff`).
pub(crate) fn pick(
    levels: &[Vec<FileSummary>],
    shape: &Shape,
    busy: &HashSet<u64>,
    res: &[Reservation],
    cutoff: u64,
) -> Option<Pick> {
    let mut due: Vec<(usize, f64)> = shape
        .scores
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, s)| s >= 1.0)
        .collect();
    due.sort_by(|a, b| b.1.total_cmp(&a.1));
    let by_size = due.into_iter().find_map(|(level, _)| {
        if level == 0 {
            pick_l0(levels, shape.base_level, busy, res)
        } else {
            pick_deeper(levels, level, busy, res, |_| true)
        }
    });
    by_size
        .or_else(|| pick_tombstones(levels, busy, res))
        .or_else(|| pick_bottom(levels, busy, res, cutoff))
}

/// Whether a file is mostly tombstones: worth pushing down even when its level is within its
/// target, so the tombstones meet the data they delete and both go (deletes give space back).
pub(crate) fn tombstone_dense(f: &FileSummary) -> bool {
    f.tombstones > 0 && f.tombstones * 2 >= f.entries
}

/// A deletion-triggered pick: a tombstone-dense file of a level above the last.
fn pick_tombstones(
    levels: &[Vec<FileSummary>],
    busy: &HashSet<u64>,
    res: &[Reservation],
) -> Option<Pick> {
    let last = levels.len().checked_sub(1)?;
    (1..last).find_map(|level| pick_deeper(levels, level, busy, res, tombstone_dense))
}

/// A deletion-triggered pick of the last level: a tombstone-dense file no snapshot needs as it
/// is, rewritten in place. The last level is never scored by size, so without this the
/// tombstones a trivial move (or a merge under a snapshot) left there would stay forever.
fn pick_bottom(
    levels: &[Vec<FileSummary>],
    busy: &HashSet<u64>,
    res: &[Reservation],
    cutoff: u64,
) -> Option<Pick> {
    let last = levels.len().checked_sub(1).filter(|&l| l >= 1)?;
    levels
        .get(last)?
        .iter()
        .filter(|f| !busy.contains(&f.number) && tombstone_dense(f) && f.max_seq <= cutoff)
        .find_map(|f| {
            let range = Range::of(&[f]);
            free(res, last, &range).then(|| Pick {
                level: last,
                output_level: last,
                inputs: vec![f.clone()],
                next_inputs: Vec::new(),
                trivial_move: false,
                reserve: vec![(last, range)],
            })
        })
}

fn overlapping<'a>(
    levels: &'a [Vec<FileSummary>],
    level: usize,
    range: &Range,
) -> Vec<&'a FileSummary> {
    levels
        .get(level)
        .map(|l| l.iter().filter(|f| range.holds(f)).collect())
        .unwrap_or_default()
}

fn pick_l0(
    levels: &[Vec<FileSummary>],
    base: usize,
    busy: &HashSet<u64>,
    res: &[Reservation],
) -> Option<Pick> {
    let l0 = levels.first()?;
    if l0.is_empty() || l0.iter().any(|f| busy.contains(&f.number)) || !free(res, 0, &Range::all())
    {
        return None;
    }
    let inputs: Vec<&FileSummary> = l0.iter().collect();
    let range = Range::of(&inputs);
    let next = overlapping(levels, base, &range);
    if next.iter().any(|f| busy.contains(&f.number)) {
        return None;
    }
    let out_range = range.widen(&next);
    if !free(res, base, &out_range) {
        return None;
    }
    Some(Pick {
        level: 0,
        output_level: base,
        trivial_move: inputs.len() == 1 && next.is_empty(),
        inputs: inputs.into_iter().cloned().collect(),
        next_inputs: next.into_iter().cloned().collect(),
        reserve: vec![(0, Range::all()), (base, out_range)],
    })
}

fn pick_deeper(
    levels: &[Vec<FileSummary>],
    level: usize,
    busy: &HashSet<u64>,
    res: &[Reservation],
    eligible: impl Fn(&FileSummary) -> bool,
) -> Option<Pick> {
    let out = level + 1;
    if out >= levels.len() {
        return None;
    }
    let mut candidates: Vec<(u128, &FileSummary, Vec<&FileSummary>)> = levels
        .get(level)?
        .iter()
        .filter(|f| !busy.contains(&f.number) && eligible(f))
        .map(|f| {
            let range = Range::of(&[f]);
            let next = overlapping(levels, out, &range);
            let overlap: u64 = next.iter().map(|n| n.size).sum();
            (
                u128::from(overlap) * 1024 / u128::from(f.size.max(1)),
                f,
                next,
            )
        })
        .collect();
    candidates.sort_by_key(|(ratio, f, _)| (*ratio, f.number));
    candidates.into_iter().find_map(|(_, f, next)| {
        let range = Range::of(&[f]);
        if !free(res, level, &range) || next.iter().any(|n| busy.contains(&n.number)) {
            return None;
        }
        let out_range = range.widen(&next);
        if !free(res, out, &out_range) {
            return None;
        }
        Some(Pick {
            level,
            output_level: out,
            trivial_move: next.is_empty(),
            inputs: vec![f.clone()],
            next_inputs: next.into_iter().cloned().collect(),
            reserve: vec![(level, range), (out, out_range)],
        })
    })
}

/// The inputs of a full compaction (every table, newest sources first), or `None` when there
/// is nothing to gain: no tables, or a single table already on the last level holding no
/// tombstones.
pub(crate) fn full_compaction(levels: &[Vec<FileSummary>]) -> Option<Vec<TaskInput>> {
    let inputs: Vec<TaskInput> = levels
        .iter()
        .enumerate()
        .flat_map(|(n, level)| {
            level.iter().map(move |f| TaskInput {
                number: f.number,
                level: u32::try_from(n).unwrap_or(u32::MAX),
            })
        })
        .collect();
    let last = levels.len().checked_sub(1)?;
    let settled = match levels.get(last).map(Vec::as_slice) {
        Some([only]) => inputs.len() == 1 && only.tombstones == 0,
        _ => false,
    };
    if inputs.is_empty() || settled {
        return None;
    }
    Some(inputs)
}

/// User-key spans of the files below `level` that intersect `range`: where a tombstone must be
/// kept because older data for its key may lie deeper.
pub(crate) fn deeper_spans(
    levels: &[Vec<FileSummary>],
    level: usize,
    range: &Range,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    levels
        .iter()
        .skip(level + 1)
        .flatten()
        .filter(|f| range.holds(f))
        .map(|f| (f.smallest.clone(), f.largest.clone()))
        .collect()
}

/// The files of the level below `output_level` that `range` overlaps, in key order: the
/// grandparents a job's outputs are cut against (`cutter`).
pub(crate) fn grandparents(
    levels: &[Vec<FileSummary>],
    output_level: usize,
    range: &Range,
) -> Vec<Grandparent<Vec<u8>>> {
    let mut g: Vec<Grandparent<Vec<u8>>> = overlapping(levels, output_level + 1, range)
        .into_iter()
        .map(|f| Grandparent {
            smallest: f.smallest.clone(),
            largest: f.largest.clone(),
            size: f.size,
        })
        .collect();
    g.sort_by(|a, b| a.smallest.cmp(&b.smallest));
    g
}

#[cfg(test)]
mod tests;

/// The picker as a simulator calls it (`bench-harness simulate`): the same `shape` and
/// `pick` the compaction manager runs after every flush and job, over tables described by
/// their sizes and key ranges, with no job running beside the pick (no reservations, every
/// version visible). Pure: no files, no engine.
pub mod policy {
    use std::collections::HashSet;

    use super::{FileSummary, LevelConfig};
    use crate::LsmOptions;
    pub use crate::compaction::cutter::{Grandparent, OutputCutter};

    /// A table as the simulator describes it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Table {
        /// Unique table number.
        pub number: u64,
        /// Bytes on disk.
        pub size: u64,
        /// Entries (versions) held.
        pub entries: u64,
        /// Smallest user key.
        pub smallest: Vec<u8>,
        /// Largest user key.
        pub largest: Vec<u8>,
    }

    /// A compaction the picker chose.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Choice {
        /// The level the inputs come from.
        pub level: usize,
        /// The output level.
        pub output_level: usize,
        /// Table numbers taken from `level`.
        pub inputs: Vec<u64>,
        /// Table numbers taken from `output_level`.
        pub next_inputs: Vec<u64>,
        /// The one input overlaps nothing below: moved, not rewritten.
        pub trivial_move: bool,
    }

    /// The settings the engine derives its level config from.
    fn config(o: &LsmOptions) -> LevelConfig {
        LevelConfig {
            l0_trigger: o.l0_compaction_trigger,
            base_bytes: o.max_bytes_for_level_base,
            multiplier: o.level_size_multiplier,
        }
    }

    fn summary(t: &Table) -> FileSummary {
        FileSummary {
            number: t.number,
            size: t.size,
            entries: t.entries,
            tombstones: 0,
            max_seq: 0,
            smallest: t.smallest.clone(),
            largest: t.largest.clone(),
        }
    }

    /// The next compaction for `levels` (L0 newest first, deeper levels in key order) under
    /// `options`, as the engine's manager would pick it with nothing else running.
    pub fn next_compaction(levels: &[Vec<Table>], options: &LsmOptions) -> Option<Choice> {
        let levels: Vec<Vec<FileSummary>> = levels
            .iter()
            .map(|l| l.iter().map(summary).collect())
            .collect();
        let busy = HashSet::new();
        let shape = super::shape(&levels, &busy, &config(options));
        let p = super::pick(&levels, &shape, &busy, &[], u64::MAX)?;
        let numbers = |fs: &[FileSummary]| fs.iter().map(|f| f.number).collect();
        Some(Choice {
            level: p.level,
            output_level: p.output_level,
            inputs: numbers(&p.inputs),
            next_inputs: numbers(&p.next_inputs),
            trivial_move: p.trivial_move,
        })
    }

    /// Level targets under dynamic level bytes for levels holding `level_bytes`: `(base level,
    /// target per level)`.
    pub fn level_targets(level_bytes: &[u64], options: &LsmOptions) -> (usize, Vec<u64>) {
        super::targets(level_bytes, &config(options))
    }
}
