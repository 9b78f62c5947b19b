//! Compaction policy: pure functions of a summary of the levels, so they can be unit-tested and
//! simulated without any files.

use super::TaskInput;
use crate::version::{Version, largest_user, smallest_user};

/// What the picker knows about a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileSummary {
    pub(crate) number: u64,
    pub(crate) size: u64,
    pub(crate) entries: u64,
    pub(crate) tombstones: u64,
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
                    smallest: smallest_user(t).to_vec(),
                    largest: largest_user(t).to_vec(),
                })
                .collect()
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(number: u64, tombstones: u64) -> FileSummary {
        FileSummary {
            number,
            size: 100,
            entries: 10,
            tombstones,
            smallest: b"a".to_vec(),
            largest: b"z".to_vec(),
        }
    }

    #[test]
    fn full_compaction_takes_everything_newest_first_unless_settled() {
        let empty: Vec<Vec<FileSummary>> = vec![Vec::new(); 7];
        assert_eq!(full_compaction(&empty), None);
        let mut levels = empty.clone();
        levels[0] = vec![file(9, 0), file(7, 0)];
        levels[6] = vec![file(3, 0)];
        let picked = full_compaction(&levels).unwrap();
        let numbers: Vec<(u64, u32)> = picked.iter().map(|i| (i.number, i.level)).collect();
        assert_eq!(numbers, vec![(9, 0), (7, 0), (3, 6)]);
        let mut settled = empty.clone();
        settled[6] = vec![file(3, 0)];
        assert_eq!(full_compaction(&settled), None);
        settled[6] = vec![file(3, 2)];
        assert!(full_compaction(&settled).is_some(), "tombstones to collect");
    }
}
