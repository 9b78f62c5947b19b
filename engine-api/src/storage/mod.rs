//! The storage seam: the one narrow filesystem interface through which every engine reads and
//! writes.
//!
//! Engines never touch `std::fs`. They go through [`Storage`], which has three implementations:
//! [`OsStorage`] on the real file system, [`SimStorage`] in memory (it simulates what a power
//! loss can leave behind and injects faults), and [`CountingStorage`], a wrapper that counts
//! bytes and syncs per [`IoClass`] so that write amplification is measured identically for every
//! engine.
//!
//! The contracts below are what the engines may rely on, and no more; `SimStorage` is built to be
//! exactly as weak as they allow:
//! - data appended to a file is durable only after [`WritableFile::sync`] returns `Ok`;
//! - a created, renamed or removed directory entry is durable only after [`Storage::sync_dir`] on
//!   its directory returns `Ok` (a file sync does not make its name durable);
//! - appends are not atomic: after a power loss an unsynced tail may be missing, cut short or
//!   garbled;
//! - `rename` atomically replaces the target in the live view.

mod accounting;
mod os;
mod sim;

use std::fmt;
use std::path::Path;

pub use accounting::{CountingStorage, IoCause, IoCounters, io_cause};
pub use os::OsStorage;
pub use sim::{CrashMode, FaultOp, SimStorage};

use crate::Result;

/// What a file's I/O is for. [`CountingStorage`] sums bytes and syncs per class.
///
/// The class belongs to a file handle: a Bitcask data file written by the writer counts as
/// [`IoClass::Log`], the same file read by a `get` as [`IoClass::UserRead`] and read by a merge
/// as [`IoClass::Compaction`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[non_exhaustive]
pub enum IoClass {
    /// The Bitcask data log or the LSM write-ahead log.
    Log,
    /// LSM memtable flushes to L0 tables.
    Flush,
    /// LSM compaction or Bitcask merge: both reading inputs and writing outputs.
    Compaction,
    /// Bitcask hint files.
    Hint,
    /// LSM manifest and `CURRENT`, Bitcask merge commit records.
    Manifest,
    /// Reads serving `get` and `scan`.
    UserRead,
    /// Reads done while opening (replaying logs, loading hints and indexes).
    Recovery,
    /// Anything else (lock files, temporary files).
    Other,
}

impl IoClass {
    /// Every class, in a fixed order (for tables and arrays indexed by class).
    pub const ALL: [IoClass; 8] = [
        IoClass::Log,
        IoClass::Flush,
        IoClass::Compaction,
        IoClass::Hint,
        IoClass::Manifest,
        IoClass::UserRead,
        IoClass::Recovery,
        IoClass::Other,
    ];

    /// Position of the class in [`IoClass::ALL`].
    pub fn index(self) -> usize {
        match self {
            IoClass::Log => 0,
            IoClass::Flush => 1,
            IoClass::Compaction => 2,
            IoClass::Hint => 3,
            IoClass::Manifest => 4,
            IoClass::UserRead => 5,
            IoClass::Recovery => 6,
            IoClass::Other => 7,
        }
    }

    /// A short lower-case name for tables.
    pub fn name(self) -> &'static str {
        match self {
            IoClass::Log => "log",
            IoClass::Flush => "flush",
            IoClass::Compaction => "compaction",
            IoClass::Hint => "hint",
            IoClass::Manifest => "manifest",
            IoClass::UserRead => "user-read",
            IoClass::Recovery => "recovery",
            IoClass::Other => "other",
        }
    }
}

/// How a directory lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// One holder, for an engine that writes.
    Exclusive,
    /// Many holders, for read-only opens; excluded by an exclusive holder. Writes nothing: the
    /// lock file is opened read-only and never created.
    Shared,
}

/// A filesystem as the engines see it. Object safe; engines hold an `Arc<dyn Storage>`.
///
/// All paths are full paths. Every method may be called from any thread.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates a directory and its missing parents, and makes the whole path durable: syncs the
    /// parent of every component, outermost first (a component that exists may come from an
    /// earlier call cut off before its syncs). Engines call it at every read-write open.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;

    /// Creates a new, empty file for appending. Fails if the file exists. The new name is
    /// durable only after [`Storage::sync_dir`] on its directory.
    fn create(&self, path: &Path, class: IoClass) -> Result<Box<dyn WritableFile>>;

    /// Opens an existing file for appending at its current end.
    fn open_append(&self, path: &Path, class: IoClass) -> Result<Box<dyn WritableFile>>;

    /// Opens an existing file for positional reads.
    fn open(&self, path: &Path, class: IoClass) -> Result<Box<dyn ReadableFile>>;

    /// Renames `from` to `to` within one directory, atomically replacing `to` if it exists.
    /// Durable only after [`Storage::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;

    /// Removes a file. Durable only after [`Storage::sync_dir`]. Open handles stay readable.
    fn remove(&self, path: &Path) -> Result<()>;

    /// Names (not paths) of the files in a directory, sorted. Subdirectories are not listed.
    fn list(&self, dir: &Path) -> Result<Vec<String>>;

    /// Whether a file exists.
    fn exists(&self, path: &Path) -> Result<bool>;

    /// Length of a file in bytes.
    fn file_len(&self, path: &Path) -> Result<u64>;

    /// Makes every create, rename and remove in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;

    /// Takes a lock on `path`, held until the returned guard is dropped. Fails with
    /// [`crate::Error::Locked`] if it conflicts with a lock already held by anyone, this process
    /// included.
    ///
    /// [`LockMode::Exclusive`] creates the lock file if missing. [`LockMode::Shared`] writes
    /// nothing: it opens the lock file read-only and never creates it, so that a read-only open
    /// works on a read-only mount or a directory the user cannot write. A shared lock of a
    /// missing lock file is still a lock: [`OsStorage`] also locks the directory itself (in the
    /// lock's mode), so a writer, which locks both, and readers exclude each other whether or
    /// not the file exists.
    fn lock(&self, path: &Path, mode: LockMode) -> Result<Box<dyn FileLock>>;
}

/// A file being appended to.
///
/// `append` and `truncate` must not be called concurrently with each other (the engine
/// serialises its writer); `sync` and `len` may be called concurrently with an `append`, which is
/// what lets a group-commit leader sync while other writers append.
pub trait WritableFile: Send + Sync {
    /// Appends `data` at the end of the file.
    fn append(&self, data: &[u8]) -> Result<()>;
    /// Makes everything appended so far durable (`fdatasync`).
    fn sync(&self) -> Result<()>;
    /// Current length, including unsynced appends.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sets the file's length to `len` bytes, cutting a torn tail or the unused preallocated
    /// tail (see [`WritableFile::preallocate`]); `len()` becomes `len`. Durable after the next
    /// `sync`.
    fn truncate(&self, len: u64) -> Result<()>;
    /// Makes the file at least `upto` bytes long without writing data: the bytes past `len()`
    /// read as zeros, while `len()` and appends stay at the logical end (appends overwrite the
    /// zeros). An `fdatasync` of an append that does not change the file's size has no inode
    /// size to journal, which makes it cheaper on ext4 and XFS (about 125 against 190 us here).
    ///
    /// The new size is durable after the next `sync`; until then a crash may keep it or not.
    /// After a crash, the zeros may follow the last record of the file: readers must take a
    /// zero tail as the end. [`WritableFile::truncate`] to `len()` cuts the unused tail (before
    /// a file is sealed). Writes no bytes (write amplification does not count it); space is
    /// not reserved (the file is sparse), so a full disk still shows at `append` or `sync`.
    /// Must not run concurrently with `append` or `truncate`. No default: a wrapping storage
    /// that forgot to forward it would silently stop preallocating (three wrappers, the
    /// harness's among them, did until each had to say what it does).
    fn preallocate(&self, upto: u64) -> Result<()>;
    /// The file's path.
    fn path(&self) -> &Path;
}

/// A file opened for positional reads. Reads see every completed append, synced or not.
pub trait ReadableFile: Send + Sync {
    /// Fills `buf` from `offset`. Reading past the end is an I/O error of kind `UnexpectedEof`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;
    /// Current length of the file.
    fn len(&self) -> Result<u64>;
    /// Whether the file is empty.
    ///
    /// # Errors
    /// As [`ReadableFile::len`].
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// The file's path.
    fn path(&self) -> &Path;

    /// Reads `len` bytes at `offset` into a new buffer.
    ///
    /// # Errors
    /// As [`ReadableFile::read_exact_at`].
    fn read_vec(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Reads the whole file.
    ///
    /// # Errors
    /// As [`ReadableFile::read_exact_at`]; a length that does not fit in memory is an I/O error.
    fn read_all(&self) -> Result<Vec<u8>> {
        let len = self.len()?;
        let len = usize::try_from(len).map_err(|_| {
            crate::Error::io(
                "read",
                self.path(),
                std::io::Error::new(std::io::ErrorKind::OutOfMemory, "file too large"),
            )
        })?;
        self.read_vec(0, len)
    }
}

/// A held directory lock; dropping it releases the lock.
pub trait FileLock: Send + Sync {
    /// The lock file's path.
    fn path(&self) -> &Path;
}

/// Replaces `dir/name` with `bytes` atomically and durably: write `name.tmp`, sync it, rename it
/// over `name`, sync the directory. After a crash at any point, `name` holds either its old
/// contents or the new ones, never a mix.
///
/// # Errors
/// Any storage error; `name.tmp` may be left behind, and is overwritten by the next call.
pub fn atomic_replace(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    bytes: &[u8],
    class: IoClass,
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    if storage.exists(&tmp)? {
        storage.remove(&tmp)?;
    }
    let file = storage.create(&tmp, class)?;
    file.append(bytes)?;
    file.sync()?;
    drop(file);
    storage.rename(&tmp, &dir.join(name))?;
    storage.sync_dir(dir)
}
