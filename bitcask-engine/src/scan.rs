//! `scan` over a hash index: a sorted, consistent snapshot.
//!
//! A hash keydir has no order, so a scan pays for one: it walks the *whole* keydir with every
//! shard read-locked at once (writers wait for that walk, O(keys)), copies the keys in range
//! with their locations, and sorts them (O(m log m) for m matches). Values are then read
//! lazily, one positional read per pair, through `Arc` handles to the data files taken with
//! the snapshot, so a merge that retires a file meanwhile changes nothing for the scan. Writes
//! acknowledged after `scan` returns are not seen: the snapshot holds locations, and records
//! are never changed in place. See `docs/bitcask.md`, "Scans".

use std::collections::BTreeMap;
use std::sync::Arc;

use engine_api::{Error, KeyRange, Result, Value};

use crate::datafile::{DataFile, FileName};
use crate::engine::Inner;
use crate::keydir::Loc;

/// The iterator behind `Engine::scan`.
pub(crate) struct Snapshot {
    entries: std::vec::IntoIter<(Vec<u8>, Loc)>,
    files: BTreeMap<u32, Arc<DataFile>>,
    failed: bool,
}

impl Snapshot {
    pub(crate) fn take(inner: &Inner, range: &KeyRange) -> Snapshot {
        // Holding the file table while the keydir is copied guarantees that every location
        // copied names a file in the table copied (files join before the keydir points at
        // them and leave after it stops).
        let table = inner.files.read();
        let entries = inner.keydir.snapshot(range);
        let files = table.clone();
        drop(table);
        Snapshot {
            entries: entries.into_iter(),
            files,
            failed: false,
        }
    }
}

impl Iterator for Snapshot {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let (key, loc) = self.entries.next()?;
        let read = match self.files.get(&loc.file) {
            Some(file) => file.read_value(&loc, &key),
            None => Err(Error::corruption(
                FileName::Data(loc.file).name(),
                u64::from(loc.offset),
                "a data file the scan snapshot holds",
            )),
        };
        match read {
            Ok(value) => Some(Ok((Value::from(key), value))),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
