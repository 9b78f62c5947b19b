//! [`CountingStorage`]: counts every byte and sync that passes through the seam, per [`IoClass`].
//!
//! Engines wrap the storage they are given in one of these at open and report its counters in
//! [`crate::Stats::io`]. Because the counting happens here, below the engine, write amplification
//! means the same thing for every engine in the workspace. A host that measures engines (the
//! bench harness) wraps the storage it passes in [`crate::CommonOptions::storage`] in one of its
//! own, so its figures do not depend on the engine's own report ([`crate::CommonOptions::counted`]).
//!
//! A file handle has one class, but a handle kept for user reads (an LSM table, a Bitcask data
//! file) is also read by work that is not a user's: a flush or compaction opening the table it
//! wrote, recovery loading a table's index. Such work runs under an [`IoCause`]
//! ([`io_cause`]): while it is alive, the thread's reads through user-read handles count under
//! the cause's class, so each byte is counted under the work that caused it.

use std::cell::Cell;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{FileLock, IoClass, LockMode, ReadableFile, Storage, WritableFile};
use crate::Result;
use crate::stats::{ClassIo, IoStats};

thread_local! {
    /// The work this thread is doing, if it is not serving a user (see [`io_cause`]).
    static CAUSE: Cell<Option<IoClass>> = const { Cell::new(None) };
}

/// While the returned guard lives, reads this thread makes through handles of class
/// [`IoClass::UserRead`] are counted under `class` (by every [`CountingStorage`]): background
/// work that reads through a handle kept for gets counts as itself, not as a user read.
/// Guards nest; dropping one restores the cause before it.
#[must_use = "the cause holds only while the guard lives"]
pub fn io_cause(class: IoClass) -> IoCause {
    IoCause {
        previous: CAUSE.with(|c| c.replace(Some(class))),
        _not_send: PhantomData,
    }
}

/// The guard of [`io_cause`]; stays on the thread that made it.
#[derive(Debug)]
pub struct IoCause {
    previous: Option<IoClass>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for IoCause {
    fn drop(&mut self) {
        CAUSE.with(|c| c.set(self.previous));
    }
}

/// The class an I/O through a handle of `class` counts under on this thread.
fn effective(class: IoClass) -> IoClass {
    match class {
        IoClass::UserRead => CAUSE.with(Cell::get).unwrap_or(class),
        other => other,
    }
}

/// Atomic counters for one storage, shared by every handle opened through it.
#[derive(Debug, Default)]
pub struct IoCounters {
    classes: [ClassCounters; IoClass::ALL.len()],
    dir_syncs: AtomicU64,
    files_created: AtomicU64,
    files_removed: AtomicU64,
}

#[derive(Debug, Default)]
struct ClassCounters {
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
    writes: AtomicU64,
    reads: AtomicU64,
    syncs: AtomicU64,
}

impl IoCounters {
    fn class(&self, class: IoClass) -> &ClassCounters {
        // `index` is always below `ALL.len()`, the array's length.
        #[expect(clippy::indexing_slicing, reason = "index < ALL.len() by construction")]
        &self.classes[class.index()]
    }

    /// A consistent-enough copy of the counters (each counter is read atomically).
    pub fn snapshot(&self) -> IoStats {
        let mut stats = IoStats::default();
        for class in IoClass::ALL {
            let c = self.class(class);
            stats.set(
                class,
                ClassIo {
                    bytes_written: c.bytes_written.load(Ordering::Relaxed),
                    bytes_read: c.bytes_read.load(Ordering::Relaxed),
                    writes: c.writes.load(Ordering::Relaxed),
                    reads: c.reads.load(Ordering::Relaxed),
                    syncs: c.syncs.load(Ordering::Relaxed),
                },
            );
        }
        stats.dir_syncs = self.dir_syncs.load(Ordering::Relaxed);
        stats.files_created = self.files_created.load(Ordering::Relaxed);
        stats.files_removed = self.files_removed.load(Ordering::Relaxed);
        stats
    }
}

/// A [`Storage`] wrapper that counts I/O per class.
#[derive(Debug, Clone)]
pub struct CountingStorage {
    inner: Arc<dyn Storage>,
    counters: Arc<IoCounters>,
}

impl CountingStorage {
    /// Wraps `inner`, with fresh counters.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        CountingStorage {
            inner,
            counters: Arc::default(),
        }
    }

    /// The counters, shared with every handle opened through this storage.
    pub fn counters(&self) -> &Arc<IoCounters> {
        &self.counters
    }

    /// The storage being wrapped.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }
}

impl Storage for CountingStorage {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn create(&self, path: &Path, class: IoClass) -> Result<Box<dyn WritableFile>> {
        let file = self.inner.create(path, class)?;
        self.counters.files_created.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(CountingWritable {
            inner: file,
            counters: Arc::clone(&self.counters),
            class,
        }))
    }

    fn open_append(&self, path: &Path, class: IoClass) -> Result<Box<dyn WritableFile>> {
        Ok(Box::new(CountingWritable {
            inner: self.inner.open_append(path, class)?,
            counters: Arc::clone(&self.counters),
            class,
        }))
    }

    fn open(&self, path: &Path, class: IoClass) -> Result<Box<dyn ReadableFile>> {
        Ok(Box::new(CountingReadable {
            inner: self.inner.open(path, class)?,
            counters: Arc::clone(&self.counters),
            class,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.inner.remove(path)?;
        self.counters.files_removed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        self.inner.exists(path)
    }

    fn file_len(&self, path: &Path) -> Result<u64> {
        self.inner.file_len(path)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.counters.dir_syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_dir(dir)
    }

    fn lock(&self, path: &Path, mode: LockMode) -> Result<Box<dyn FileLock>> {
        self.inner.lock(path, mode)
    }
}

struct CountingWritable {
    inner: Box<dyn WritableFile>,
    counters: Arc<IoCounters>,
    class: IoClass,
}

impl WritableFile for CountingWritable {
    fn append(&self, data: &[u8]) -> Result<()> {
        self.inner.append(data)?;
        let c = self.counters.class(self.class);
        c.bytes_written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        c.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.counters
            .class(self.class)
            .syncs
            .fetch_add(1, Ordering::Relaxed);
        self.inner.sync()
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn truncate(&self, len: u64) -> Result<()> {
        self.inner.truncate(len)
    }

    fn preallocate(&self, upto: u64) -> Result<()> {
        // Writes no bytes: not counted as written.
        self.inner.preallocate(upto)
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}

struct CountingReadable {
    inner: Box<dyn ReadableFile>,
    counters: Arc<IoCounters>,
    class: IoClass,
}

impl ReadableFile for CountingReadable {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.inner.read_exact_at(buf, offset)?;
        let c = self.counters.class(effective(self.class));
        c.bytes_read.fetch_add(buf.len() as u64, Ordering::Relaxed);
        c.reads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        self.inner.len()
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}
