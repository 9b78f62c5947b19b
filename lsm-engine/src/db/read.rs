//! The read path: memtable, sealed memtables newest first, L0 newest first, then at most one
//! table per deeper level; each table's bloom filter before any of its blocks. Scans merge every
//! source. Both read one super-version at one sequence number, taken in that order (as
//! RocksDB's `GetImpl` does): the super-version first, which pins its tables, then the
//! sequence number. Taken the other way round, a compaction planned and committed between the
//! two could drop the version the read needs (shadowed by a newer one the read must not see).
//! In this order a compaction after the super-version changes nothing the read holds, and a
//! compaction before it had a cutoff at or below the sequence number taken after it. Writes
//! the super-version misses (they went to a memtable created after it) are all newer than
//! every write it holds, so the read sees a consistent prefix: the state at some point after
//! the read began.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use engine_api::{KeyRange, Result, Scan, TraceStep, Value};

use super::{Inner, SuperVersion};
use crate::iter::{InternalIterator, LevelIter, MergingIter, UserIter};
use crate::key::{self, SeekKey, SeqNo};
use crate::memtable::{Lookup, Memtable, MemtableIter};
use crate::sstable::{ProbeInfo, Table};
use crate::version::{self, Version};

/// Collects trace steps when `explain_get` asked for them, and does nothing otherwise.
struct Trace<'a>(Option<&'a mut Vec<TraceStep>>);

impl Trace<'_> {
    fn on(&self) -> bool {
        self.0.is_some()
    }

    fn note(&mut self, step: impl FnOnce() -> TraceStep) {
        if let Some(steps) = self.0.as_deref_mut() {
            steps.push(step());
        }
    }

    fn text(&mut self, what: impl FnOnce() -> String) {
        self.note(|| TraceStep {
            what: what(),
            ..TraceStep::default()
        });
    }
}

fn outcome(found: Option<&Lookup>) -> &'static str {
    match found {
        Some(Lookup::Value(_)) => "hit (value)",
        Some(Lookup::Deleted) => "hit (tombstone)",
        None => "miss",
    }
}

fn resolve(found: Lookup) -> Option<Value> {
    match found {
        Lookup::Value(v) => Some(v),
        Lookup::Deleted => None,
    }
}

impl Inner {
    /// What a read reads: the current super-version, then the sequence number `at` (a
    /// snapshot's) or, without one, the latest visible: in that order (module documentation).
    fn read_view(&self, at: Option<SeqNo>) -> (Arc<SuperVersion>, SeqNo) {
        let sv = self.current();
        self.between_read_steps();
        let seq = at.unwrap_or_else(|| self.visible_seq.load(Ordering::SeqCst));
        (sv, seq)
    }

    /// The value of `user` at `at` (latest if `None`), with the steps taken if `steps` is given.
    pub(crate) fn get_at(
        &self,
        user: &[u8],
        at: Option<SeqNo>,
        steps: Option<&mut Vec<TraceStep>>,
    ) -> Result<Option<Value>> {
        let mut trace = Trace(steps);
        let (sv, seq) = self.read_view(at);
        let seek = SeekKey::new(user, seq);
        let seek = seek.as_slice();
        let found = sv.mem.get_at(seek);
        trace.text(|| format!("memtable: {}", outcome(found.as_ref())));
        if let Some(found) = found {
            return Ok(resolve(found));
        }
        for (i, sealed) in sv.imms.iter().rev().enumerate() {
            let found = sealed.mem.get_at(seek);
            trace.text(|| format!("immutable memtable {}: {}", i + 1, outcome(found.as_ref())));
            if let Some(found) = found {
                return Ok(resolve(found));
            }
        }
        version_get(&sv.version, seek, &mut trace)
    }

    /// A lazy scan of `range` at `at` (latest if `None`) over every source of the current
    /// super-version.
    pub(crate) fn scan_at(&self, at: Option<SeqNo>, range: KeyRange) -> Scan<'static> {
        let (sv, seq) = self.read_view(at);
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        children.push(memtable_iter(&sv.mem));
        for sealed in sv.imms.iter().rev() {
            children.push(memtable_iter(&sealed.mem));
        }
        for (n, level) in sv.version.levels().iter().enumerate() {
            if n == 0 {
                for t in level {
                    children.push(Box::new(t.iter()));
                }
            } else if !level.is_empty() {
                children.push(Box::new(LevelIter::new(level.clone())));
            }
        }
        Box::new(UserIter::new(MergingIter::new(children), seq, range))
    }
}

fn memtable_iter(mem: &std::sync::Arc<Memtable>) -> Box<dyn InternalIterator> {
    Box::new(MemtableIter::new(std::sync::Arc::clone(mem)))
}

fn version_get(version: &Version, seek: &[u8], trace: &mut Trace<'_>) -> Result<Option<Value>> {
    let user = key::user_key(seek);
    for (n, level) in version.levels().iter().enumerate() {
        // Iterated, not collected: a candidate vector was a `malloc` per level per get.
        let l0 = level.iter().filter(|t| n == 0 && version::covers(t, user));
        let deeper = if n == 0 {
            None
        } else {
            version.table_for(n, user)
        };
        let mut probed = false;
        for t in l0.chain(deeper) {
            probed = true;
            let (found, info) = t.get_at(seek)?;
            trace.note(|| probe_step(t, n, &info, found.as_ref()));
            if let Some(found) = found {
                return Ok(resolve(found));
            }
        }
        if trace.on() && !probed && !level.is_empty() {
            trace.text(|| format!("L{n}: no table's key range holds the key"));
        }
    }
    Ok(None)
}

fn probe_step(t: &Table, level: usize, info: &ProbeInfo, found: Option<&Lookup>) -> TraceStep {
    let name = format!("table {} (L{level})", t.number());
    match *info {
        ProbeInfo::FilterSaysAbsent => TraceStep {
            what: format!("{name}: bloom filter says absent, no block read"),
            ..TraceStep::default()
        },
        ProbeInfo::PastLastBlock => TraceStep {
            what: format!("{name}: bloom filter says maybe; key is past the last block"),
            ..TraceStep::default()
        },
        ProbeInfo::Block {
            offset,
            bytes,
            cached,
        } => {
            let from = if cached { "block cache" } else { "storage" };
            TraceStep {
                what: format!(
                    "{name}: bloom filter says maybe; read block at offset {offset} ({bytes} bytes) from {from}: {}",
                    outcome(found)
                ),
                reads: u64::from(!cached),
                bytes: if cached { 0 } else { bytes },
                cached,
            }
        }
    }
}
