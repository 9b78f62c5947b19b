//! [`Storage`] on the real file system (`std::fs`).
//!
//! Reads are positional (`pread`), so readers never share a file offset or a lock. Appends are
//! positional writes at a tracked end, so a group-commit leader can `fdatasync` while another
//! writer appends. Directory syncs open the directory and `fsync` it, as POSIX requires for a
//! create, rename or remove to survive a power loss.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::ErrorKind;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{FileLock, IoClass, LockMode, ReadableFile, Storage, WritableFile};
use crate::{Error, Result};

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsStorage;

impl OsStorage {
    /// Creates the real file system handle.
    pub fn new() -> Self {
        OsStorage
    }
}

impl Storage for OsStorage {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .collect();
        fs::create_dir_all(dir).map_err(|e| Error::io("create_dir", dir, e))?;
        // A directory's name is durable only once its parent is synced. Sync the parent of
        // every component, outermost first, not only of those created now: one that exists may
        // come from an earlier call killed before its syncs.
        let components: Vec<&Path> = dir.ancestors().filter(|c| c.parent().is_some()).collect();
        for component in components.into_iter().rev() {
            match self.sync_dir(parent_or_dot(component)) {
                // An ancestor we may not read is not one we made: its name is not ours to sync.
                Err(Error::Io { source, .. })
                    if source.kind() == ErrorKind::PermissionDenied
                        && !missing.contains(&component) => {}
                other => other?,
            }
        }
        Ok(())
    }

    fn create(&self, path: &Path, _class: IoClass) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        Ok(Box::new(OsWritable::new(file, path.to_path_buf(), 0)))
    }

    fn open_append(&self, path: &Path, _class: IoClass) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open_append", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        Ok(Box::new(OsWritable::new(file, path.to_path_buf(), len)))
    }

    fn open(&self, path: &Path, _class: IoClass) -> Result<Box<dyn ReadableFile>> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        Ok(Box::new(OsReadable {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| Error::io("rename", from, e))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
            let entry = entry.map_err(|e| Error::io("list", dir, e))?;
            let is_file = entry
                .file_type()
                .map_err(|e| Error::io("list", entry.path(), e))?
                .is_file();
            if let (true, Some(name)) = (is_file, entry.file_name().to_str()) {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        path.try_exists().map_err(|e| Error::io("stat", path, e))
    }

    fn file_len(&self, path: &Path) -> Result<u64> {
        Ok(fs::metadata(path)
            .map_err(|e| Error::io("stat", path, e))?
            .len())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let handle = File::open(dir).map_err(|e| Error::io("open_dir", dir, e))?;
        handle.sync_all().map_err(|e| Error::io("sync_dir", dir, e))
    }

    fn lock(&self, path: &Path, mode: LockMode) -> Result<Box<dyn FileLock>> {
        // The directory is locked too, in the same mode: a shared holder of a directory
        // without a lock file (a read-only open must not create one) still excludes a writer,
        // and a writer excludes it.
        let dir = File::open(parent_or_dot(path)).map_err(|e| Error::io("lock", path, e))?;
        let file = match mode {
            LockMode::Exclusive => Some(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(|e| Error::io("lock", path, e))?,
            ),
            // Read-only, never created: works on a read-only mount or an unwritable directory.
            LockMode::Shared => match File::open(path) {
                Ok(file) => Some(file),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(Error::io("lock", path, e)),
            },
        };
        if let Some(file) = &file {
            try_flock(file, mode, path)?;
        }
        try_flock(&dir, mode, path)?;
        Ok(Box::new(OsLock {
            _file: file,
            _dir: dir,
            path: path.to_path_buf(),
        }))
    }
}

/// The directory holding `path` (`.` for a bare name).
fn parent_or_dot(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Takes an advisory lock (`flock`) on an open file or directory without waiting.
fn try_flock(file: &File, mode: LockMode, path: &Path) -> Result<()> {
    let attempt = match mode {
        LockMode::Exclusive => file.try_lock(),
        LockMode::Shared => file.try_lock_shared(),
    };
    match attempt {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(Error::Locked {
            path: path.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(Error::io("lock", path, e)),
    }
}

struct OsWritable {
    file: File,
    path: PathBuf,
    /// The logical end: where the next append goes.
    len: AtomicU64,
    /// The file's size, past `len` after a `preallocate`.
    size: AtomicU64,
}

impl OsWritable {
    fn new(file: File, path: PathBuf, len: u64) -> Self {
        OsWritable {
            file,
            path,
            len: AtomicU64::new(len),
            size: AtomicU64::new(len),
        }
    }
}

impl WritableFile for OsWritable {
    fn append(&self, data: &[u8]) -> Result<()> {
        let at = self.len.load(Ordering::Acquire);
        self.file
            .write_all_at(data, at)
            .map_err(|e| Error::io("append", &self.path, e))?;
        let end = at + data.len() as u64;
        self.size.fetch_max(end, Ordering::AcqRel);
        self.len.store(end, Ordering::Release);
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("sync", &self.path, e))
    }

    fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    fn truncate(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| Error::io("truncate", &self.path, e))?;
        self.size.store(len, Ordering::Release);
        self.len.store(len, Ordering::Release);
        Ok(())
    }

    fn preallocate(&self, upto: u64) -> Result<()> {
        if upto <= self.size.load(Ordering::Acquire) {
            return Ok(());
        }
        // `ftruncate` upwards: a sparse extension, no data written.
        self.file
            .set_len(upto)
            .map_err(|e| Error::io("preallocate", &self.path, e))?;
        self.size.store(upto, Ordering::Release);
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

struct OsReadable {
    file: File,
    path: PathBuf,
}

impl ReadableFile for OsReadable {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io("read", &self.path, e))
    }

    fn len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &self.path, e))?
            .len())
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

struct OsLock {
    // Holding the open lock file and directory holds the locks; closing them releases them.
    _file: Option<File>,
    _dir: File,
    path: PathBuf,
}

impl FileLock for OsLock {
    fn path(&self) -> &Path {
        &self.path
    }
}
