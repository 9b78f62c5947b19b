//! [`HookedStorage`]: a [`SimStorage`] that calls a test's [`Hook`] before and after each
//! operation, so that a test can fail, hold or panic one operation the engine makes, or report
//! a failure for one that happened (an extending `ftruncate` that failed halfway, a write
//! that reached the file but returned an error).
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use engine_api::testing::hooked::{Before, Hook, HookedStorage, Op};
//! use engine_api::{IoClass, Storage};
//!
//! /// Fails the next sync once.
//! #[derive(Default)]
//! struct FailSync(AtomicBool);
//!
//! impl Hook for FailSync {
//!     fn before(&self, op: &Op<'_>) -> Before {
//!         match op {
//!             Op::Sync(_) if self.0.swap(false, Ordering::SeqCst) => Before::Fail(op.error("x")),
//!             _ => Before::Run,
//!         }
//!     }
//! }
//!
//! let storage = HookedStorage::new(FailSync::default());
//! storage.sim.create_dir_all("/db".as_ref()).unwrap();
//! let f = storage.create("/db/a".as_ref(), IoClass::Log).unwrap();
//! storage.hook.0.store(true, Ordering::SeqCst);
//! assert!(f.sync().is_err());
//! assert!(f.sync().is_ok());
//! ```

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::WritableFile;
use crate::{Error, FileLock, IoClass, LockMode, ReadableFile, Result, SimStorage, Storage};

/// One storage operation, as a [`Hook`] sees it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Op<'a> {
    /// [`Storage::create`].
    Create(&'a Path, IoClass),
    /// [`Storage::open_append`].
    OpenAppend(&'a Path, IoClass),
    /// [`Storage::open`].
    Open(&'a Path, IoClass),
    /// [`Storage::rename`].
    Rename {
        /// The old name.
        from: &'a Path,
        /// The new name.
        to: &'a Path,
    },
    /// [`Storage::remove`].
    Remove(&'a Path),
    /// [`Storage::sync_dir`].
    SyncDir(&'a Path),
    /// [`WritableFile::append`] of `len` bytes.
    Append(&'a Path, usize),
    /// [`WritableFile::sync`].
    Sync(&'a Path),
    /// [`WritableFile::truncate`] to the length given.
    Truncate(&'a Path, u64),
    /// [`WritableFile::preallocate`] up to the length given.
    Preallocate(&'a Path, u64),
}

impl Op<'_> {
    /// The file or directory the operation is on (a rename's new name).
    pub fn path(&self) -> &Path {
        match *self {
            Op::Create(p, _) | Op::OpenAppend(p, _) | Op::Open(p, _) => p,
            Op::Rename { to, .. } => to,
            Op::Remove(p) | Op::SyncDir(p) | Op::Sync(p) => p,
            Op::Append(p, _) | Op::Truncate(p, _) | Op::Preallocate(p, _) => p,
        }
    }

    /// Whether the operation is on a file whose name ends in `suffix` (`".data"`, `".log"`).
    pub fn on(&self, suffix: &str) -> bool {
        self.path().to_string_lossy().ends_with(suffix)
    }

    /// An injected I/O error for this operation.
    pub fn error(&self, what: &str) -> Error {
        let op = match self {
            Op::Create(..) => "create",
            Op::OpenAppend(..) => "open_append",
            Op::Open(..) => "open",
            Op::Rename { .. } => "rename",
            Op::Remove(..) => "remove",
            Op::SyncDir(..) => "sync_dir",
            Op::Append(..) => "append",
            Op::Sync(..) => "sync",
            Op::Truncate(..) => "truncate",
            Op::Preallocate(..) => "preallocate",
        };
        Error::io(op, self.path(), io::Error::other(what.to_owned()))
    }
}

/// What [`Hook::before`] decides for an operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum Before {
    /// Run the operation.
    Run,
    /// Return this error in its place; the operation does not run.
    Fail(Error),
    /// Report success without running it (a sync whose error went to another caller, an
    /// append lost on the way). Only for operations that return nothing; a create or an open
    /// runs.
    Pretend,
}

/// What a test does around the operations of a [`HookedStorage`]. Both methods run on the
/// thread that called the operation, and may block or panic.
pub trait Hook: Send + Sync + 'static {
    /// Runs before `op` and decides whether it runs.
    fn before(&self, op: &Op<'_>) -> Before {
        let _ = op;
        Before::Run
    }

    /// Runs after `op` ran (`ok` tells whether it succeeded); an error is returned in place of
    /// the operation's outcome, although the operation happened.
    fn after(&self, op: &Op<'_>, ok: bool) -> Result<()> {
        let _ = (op, ok);
        Ok(())
    }
}

/// A [`SimStorage`] that runs [`Hook::before`] and [`Hook::after`] around every operation
/// but `list`, `exists`, `file_len`, `create_dir_all` and `lock`.
pub struct HookedStorage<H> {
    /// The storage underneath (crash it, inject its faults, read its files here).
    pub sim: SimStorage,
    /// The test's hook.
    pub hook: Arc<H>,
}

impl<H> Clone for HookedStorage<H> {
    fn clone(&self) -> Self {
        HookedStorage {
            sim: self.sim.clone(),
            hook: Arc::clone(&self.hook),
        }
    }
}

impl<H: Hook> HookedStorage<H> {
    /// A fresh, empty storage with `hook` around its operations.
    pub fn new(hook: H) -> Self {
        HookedStorage::on(SimStorage::new(), hook)
    }

    /// `hook` around the operations of `sim` (a storage a test already filled).
    pub fn on(sim: SimStorage, hook: H) -> Self {
        HookedStorage {
            sim,
            hook: Arc::new(hook),
        }
    }

    /// Runs `run` for `op` between the hook's two calls; `pretend` is the outcome of a run
    /// the hook pretends (`None`: the operation runs anyway).
    fn around<T>(
        &self,
        op: Op<'_>,
        pretend: Option<T>,
        run: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let out = match (self.hook.before(&op), pretend) {
            (Before::Fail(e), _) => return Err(e),
            (Before::Pretend, Some(done)) => return Ok(done),
            _ => run(),
        };
        self.hook.after(&op, out.is_ok())?;
        out
    }

    /// [`HookedStorage::around`] an operation that returns nothing.
    fn around_unit(&self, op: Op<'_>, run: impl FnOnce() -> Result<()>) -> Result<()> {
        self.around(op, Some(()), run)
    }

    fn wrap(&self, file: Box<dyn WritableFile>) -> Box<dyn WritableFile> {
        Box::new(HookedFile {
            file,
            storage: self.clone(),
        })
    }
}

impl<H: Hook + Default> Default for HookedStorage<H> {
    fn default() -> Self {
        HookedStorage::new(H::default())
    }
}

impl<H> fmt::Debug for HookedStorage<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookedStorage")
            .field("sim", &self.sim)
            .finish()
    }
}

struct HookedFile<H> {
    file: Box<dyn WritableFile>,
    storage: HookedStorage<H>,
}

impl<H: Hook> WritableFile for HookedFile<H> {
    fn append(&self, data: &[u8]) -> Result<()> {
        let op = Op::Append(self.file.path(), data.len());
        self.storage.around_unit(op, || self.file.append(data))
    }
    fn sync(&self) -> Result<()> {
        let op = Op::Sync(self.file.path());
        self.storage.around_unit(op, || self.file.sync())
    }
    fn len(&self) -> u64 {
        self.file.len()
    }
    fn truncate(&self, len: u64) -> Result<()> {
        let op = Op::Truncate(self.file.path(), len);
        self.storage.around_unit(op, || self.file.truncate(len))
    }
    fn preallocate(&self, upto: u64) -> Result<()> {
        let op = Op::Preallocate(self.file.path(), upto);
        self.storage.around_unit(op, || self.file.preallocate(upto))
    }
    fn path(&self) -> &Path {
        self.file.path()
    }
}

impl<H: Hook> Storage for HookedStorage<H> {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.sim.create_dir_all(dir)
    }
    fn create(&self, path: &Path, class: IoClass) -> Result<Box<dyn WritableFile>> {
        let file = self.around(Op::Create(path, class), None, || {
            self.sim.create(path, class)
        })?;
        Ok(self.wrap(file))
    }
    fn open_append(&self, path: &Path, class: IoClass) -> Result<Box<dyn WritableFile>> {
        let op = Op::OpenAppend(path, class);
        let file = self.around(op, None, || self.sim.open_append(path, class))?;
        Ok(self.wrap(file))
    }
    fn open(&self, path: &Path, class: IoClass) -> Result<Box<dyn ReadableFile>> {
        self.around(Op::Open(path, class), None, || self.sim.open(path, class))
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.around_unit(Op::Rename { from, to }, || self.sim.rename(from, to))
    }
    fn remove(&self, path: &Path) -> Result<()> {
        self.around_unit(Op::Remove(path), || self.sim.remove(path))
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.sim.list(dir)
    }
    fn exists(&self, path: &Path) -> Result<bool> {
        self.sim.exists(path)
    }
    fn file_len(&self, path: &Path) -> Result<u64> {
        self.sim.file_len(path)
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.around_unit(Op::SyncDir(dir), || self.sim.sync_dir(dir))
    }
    fn lock(&self, path: &Path, mode: LockMode) -> Result<Box<dyn FileLock>> {
        self.sim.lock(path, mode)
    }
}
