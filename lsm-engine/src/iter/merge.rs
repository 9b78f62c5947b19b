//! The merging iterator: one sorted stream over many sorted sources, by a binary min-heap of
//! source indices. Used by scans, flushes and compactions alike.

use std::cmp::Ordering;

use bytes::Bytes;
use engine_api::Result;

use super::InternalIterator;
use crate::key;

/// Merges sources in internal-key order. On equal keys the source listed first wins, so callers
/// list sources newest first.
pub(crate) struct MergingIter {
    children: Vec<Box<dyn InternalIterator>>,
    /// A min-heap of indices of valid children, ordered by their current key.
    heap: Vec<usize>,
}

impl MergingIter {
    pub(crate) fn new(children: Vec<Box<dyn InternalIterator>>) -> Self {
        MergingIter {
            children,
            heap: Vec::new(),
        }
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (Some(ca), Some(cb)) = (self.children.get(a), self.children.get(b)) else {
            return false;
        };
        match key::compare(ca.key(), cb.key()) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => a < b,
        }
    }

    fn rebuild(&mut self) {
        self.heap = (0..self.children.len())
            .filter(|&i| self.children.get(i).is_some_and(|c| c.valid()))
            .collect();
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
    }

    fn at(&self, i: usize) -> usize {
        self.heap.get(i).copied().unwrap_or(usize::MAX)
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if l < self.heap.len() && self.less(self.at(l), self.at(smallest)) {
                smallest = l;
            }
            if r < self.heap.len() && self.less(self.at(r), self.at(smallest)) {
                smallest = r;
            }
            if smallest == i {
                return;
            }
            self.heap.swap(i, smallest);
            i = smallest;
        }
    }

    fn top(&self) -> Option<&dyn InternalIterator> {
        let i = *self.heap.first()?;
        self.children.get(i).map(|c| &**c)
    }
}

impl InternalIterator for MergingIter {
    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        for c in &mut self.children {
            c.seek_to_first()?;
        }
        self.rebuild();
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek(target)?;
        }
        self.rebuild();
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        let Some(&i) = self.heap.first() else {
            return Ok(());
        };
        let Some(child) = self.children.get_mut(i) else {
            return Ok(());
        };
        child.next()?;
        if !child.valid() {
            let last = self.heap.len() - 1;
            self.heap.swap(0, last);
            self.heap.pop();
        }
        self.sift_down(0);
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.top().map_or(&[], |c| c.key())
    }

    fn value(&self) -> Bytes {
        self.top().map_or_else(Bytes::new, |c| c.value())
    }
}
