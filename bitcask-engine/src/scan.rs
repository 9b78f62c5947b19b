//! `scan` over a hash index: a sorted, consistent snapshot.
//!
//! A hash keydir has no order, so a scan pays for one: it walks the *whole* keydir with every
//! shard read-locked at once (writers wait for that walk, O(keys); rotations and `get`s do not,
//! and merges wait only to retire their inputs), copies the keys in range
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
        // Every location copied must name a file in the table copied. Files join the table
        // before the keydir points at them, so a table copied after the walk has every file
        // that joined; files leave only after the keydir stops pointing at them, and only
        // under the retire lock's write side, which the walk holds for reading. The file
        // table's own lock is held only for the copy: a rotation (which must add its next
        // file) never waits for a walk, and `get`s never queue behind such a rotation.
        let no_retire = inner.retire.read();
        #[cfg(test)]
        tests::pause_point();
        let entries = inner.keydir.snapshot(range);
        let files = inner.files.read().clone();
        drop(no_retire);
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::{Duration, Instant};

    use engine_api::{Engine, KeyRange, SimStorage, SyncPolicy};

    use crate::{BitcaskEngine, BitcaskOptions};

    /// (armed, paused, released): a scan that passes [`pause_point`] while armed waits there.
    static GATE: (Mutex<(bool, bool, bool)>, Condvar) =
        (Mutex::new((false, false, false)), Condvar::new());

    pub(super) fn pause_point() {
        let mut st = GATE
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !st.0 {
            return;
        }
        st.0 = false;
        st.1 = true;
        GATE.1.notify_all();
        while !st.2 {
            st = GATE
                .1
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A scan's walk of the keydir must not hold up a rotation, and through it every `get`:
    /// a rotation waiting for the file table's write lock behind a scan holding the read lock
    /// blocks every reader that comes after it (the lock is fair).
    #[test]
    fn a_scan_does_not_stall_gets_behind_a_rotation() {
        let sim = SimStorage::new();
        let mut o = BitcaskOptions::default();
        o.common.storage = Arc::new(sim.clone());
        o.common.sync = SyncPolicy::Never;
        o.max_file_size = 1024;
        o.merge.auto = false;
        let e = Arc::new(BitcaskEngine::open("/db", o).unwrap());
        e.put(b"k", b"v").unwrap();
        GATE.0.lock().unwrap().0 = true;
        let scan = {
            let e = Arc::clone(&e);
            std::thread::spawn(move || e.scan(KeyRange::all()).map(Iterator::count))
        };
        wait_until("the scan to pause", || GATE.0.lock().unwrap().1);
        let files_before = sim.all_files().len();
        let rotate = {
            let e = Arc::clone(&e);
            std::thread::spawn(move || e.put(b"big", &[1u8; 2000]))
        };
        // The rotation has created and named its next file: it is about to take the table's
        // write lock (give it a moment to be waiting for it).
        wait_until("the rotation to create its file", || {
            sim.all_files().len() > files_before
        });
        std::thread::sleep(Duration::from_millis(50));
        let get = {
            let e = Arc::clone(&e);
            std::thread::spawn(move || e.get(b"k").map(|v| v.is_some()))
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !get.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let stalled = !get.is_finished();
        {
            let mut st = GATE.0.lock().unwrap();
            st.2 = true;
            GATE.1.notify_all();
        }
        assert!(get.join().unwrap().unwrap());
        rotate.join().unwrap().unwrap();
        // The put ran while the scan call was in progress: it may or may not be seen.
        assert!((1..=2).contains(&scan.join().unwrap().unwrap()));
        assert!(!stalled, "a get waited for a scan's walk behind a rotation");
    }
}
