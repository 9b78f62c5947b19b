//! An iterator over one deeper level: its tables are disjoint and ordered, so it walks them one
//! after the other, opening each table's iterator only when it gets there.

use std::sync::Arc;

use bytes::Bytes;
use engine_api::Result;

use super::InternalIterator;
use crate::key;
use crate::sstable::{Table, TableIter};

/// Concatenates the iterators of a level's tables.
pub(crate) struct LevelIter {
    tables: Vec<Arc<Table>>,
    at: usize,
    current: Option<TableIter>,
}

impl LevelIter {
    /// `tables` must be ordered and disjoint (a deeper level of a version).
    pub(crate) fn new(tables: Vec<Arc<Table>>) -> Self {
        LevelIter {
            tables,
            at: 0,
            current: None,
        }
    }

    fn open(&mut self, at: usize) {
        self.at = at;
        self.current = self.tables.get(at).map(Table::iter);
    }

    /// Moves past exhausted tables.
    fn settle(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.valid()) {
            self.open(self.at + 1);
            if let Some(c) = &mut self.current {
                c.seek_to_first()?;
            }
        }
        Ok(())
    }
}

impl InternalIterator for LevelIter {
    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(TableIter::valid)
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.open(0);
        if let Some(c) = &mut self.current {
            c.seek_to_first()?;
        }
        self.settle()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let i = self
            .tables
            .partition_point(|t| key::compare(&t.props().largest, target).is_lt());
        self.open(i);
        if let Some(c) = &mut self.current {
            c.seek(target)?;
        }
        self.settle()
    }

    fn next(&mut self) -> Result<()> {
        if let Some(c) = &mut self.current {
            c.next()?;
        }
        self.settle()
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], TableIter::key)
    }

    fn value(&self) -> Bytes {
        self.current
            .as_ref()
            .map_or_else(Bytes::new, TableIter::value)
    }
}
