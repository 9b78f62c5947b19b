//! Versions: immutable snapshots of which tables are live at which level, changed only by
//! committed [`VersionEdit`]s.
//!
//! L0 holds flushed tables whose key ranges may overlap, ordered newest first (by largest
//! sequence number). Every deeper level holds tables with disjoint user-key ranges, ordered by key,
//! so a point read consults at most one table per deeper level. Tables are `Arc`s: a version that
//! a scan or read still holds keeps its tables (and their files) alive after newer versions
//! dropped them.

pub(crate) mod edit;
pub(crate) mod manifest;
mod set;

use std::sync::Arc;

pub(crate) use edit::{FileMeta, VersionEdit};
pub(crate) use set::{ManifestState, VersionSet};

use crate::key;
use crate::sstable::Table;

/// The tables of every level.
#[derive(Clone, Debug)]
pub(crate) struct Version {
    levels: Vec<Vec<Arc<Table>>>,
}

/// What the manifest records about a table, read from the table itself.
pub(crate) fn file_meta(t: &Table) -> FileMeta {
    let p = t.props();
    FileMeta {
        number: t.number(),
        size: t.size(),
        smallest: p.smallest.clone(),
        largest: p.largest.clone(),
        min_seq: p.min_seq,
        max_seq: p.max_seq,
        entries: p.entries,
        tombstones: p.tombstones,
    }
}

/// The smallest user key of a table.
pub(crate) fn smallest_user(t: &Table) -> &[u8] {
    key::user_key(&t.props().smallest)
}

/// The largest user key of a table.
pub(crate) fn largest_user(t: &Table) -> &[u8] {
    key::user_key(&t.props().largest)
}

/// Whether a table's user-key range contains `user`.
pub(crate) fn covers(t: &Table, user: &[u8]) -> bool {
    t.props().entries > 0 && smallest_user(t) <= user && user <= largest_user(t)
}

impl Version {
    /// Orders each level and checks that deeper levels do not overlap.
    pub(crate) fn from_levels(mut levels: Vec<Vec<Arc<Table>>>) -> Result<Version, String> {
        for (n, level) in levels.iter_mut().enumerate() {
            if n == 0 {
                level.sort_by(|a, b| {
                    (b.props().max_seq, b.number()).cmp(&(a.props().max_seq, a.number()))
                });
                continue;
            }
            level.sort_by(|a, b| key::compare(&a.props().smallest, &b.props().smallest));
            for pair in level.windows(2) {
                if let [a, b] = pair
                    && largest_user(a) >= smallest_user(b)
                {
                    return Err(format!(
                        "tables {} and {} overlap in level {n}",
                        a.number(),
                        b.number()
                    ));
                }
            }
        }
        Ok(Version { levels })
    }

    pub(crate) fn levels(&self) -> &[Vec<Arc<Table>>] {
        &self.levels
    }

    /// Every table with its level.
    pub(crate) fn tables(&self) -> impl Iterator<Item = (usize, &Arc<Table>)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(n, level)| level.iter().map(move |t| (n, t)))
    }

    /// The table with this number, if live.
    pub(crate) fn find(&self, number: u64) -> Option<(usize, &Arc<Table>)> {
        self.tables().find(|(_, t)| t.number() == number)
    }

    /// The version after `edit`; `added` holds the opened tables of `edit.added`, in order.
    pub(crate) fn apply(
        &self,
        edit: &VersionEdit,
        added: &[Arc<Table>],
    ) -> Result<Version, String> {
        let mut levels = self.levels.clone();
        for &(level, number) in &edit.deleted {
            let tables = levels
                .get_mut(level as usize)
                .ok_or_else(|| format!("level {level} out of range"))?;
            let before = tables.len();
            tables.retain(|t| t.number() != number);
            if tables.len() == before {
                return Err(format!("deleted table {number} is not in level {level}"));
            }
        }
        if edit.added.len() != added.len() {
            return Err("added tables do not match the edit".to_string());
        }
        for ((level, meta), table) in edit.added.iter().zip(added) {
            let present = levels.iter().flatten().any(|t| t.number() == meta.number);
            if meta.number != table.number() || present {
                return Err(format!("table {} added twice or mismatched", meta.number));
            }
            levels
                .get_mut(*level as usize)
                .ok_or_else(|| format!("level {level} out of range"))?
                .push(Arc::clone(table));
        }
        Version::from_levels(levels)
    }

    /// Every live table as an `added` list, for a manifest snapshot.
    pub(crate) fn snapshot_files(&self) -> Vec<(u32, FileMeta)> {
        self.tables()
            .map(|(n, t)| (u32::try_from(n).unwrap_or(u32::MAX), file_meta(t)))
            .collect()
    }

    /// The table of deeper level `level` (>= 1) whose range may hold `user`.
    pub(crate) fn table_for(&self, level: usize, user: &[u8]) -> Option<&Arc<Table>> {
        let tables = self.levels.get(level)?;
        let i = tables.partition_point(|t| largest_user(t) < user);
        tables.get(i).filter(|t| smallest_user(t) <= user)
    }

    /// Bytes of the tables of `level`.
    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        self.levels
            .get(level)
            .map_or(0, |ts| ts.iter().map(|t| t.size()).sum())
    }
}
