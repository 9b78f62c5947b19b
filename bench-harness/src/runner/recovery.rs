//! Recovery time: how long an engine takes to open after a crash, and how much it holds once
//! open.
//!
//! **How the crash is made.** The engine runs on a [`Freezer`], a storage wrapper that can stop
//! every call that changes a file (append, sync, truncate, create, rename, remove, directory
//! sync) at once: [`Freezer::frozen`] waits for the calls in flight, holds new ones, and runs a
//! closure. Inside it the harness copies the engine's directory: the copy is exactly what a
//! `SIGKILL` at that instant would leave (a process kill loses nothing the engine handed to the
//! OS, and keeps nothing it had not), including whatever half-done rotation, flush or
//! compaction was under way. The engine then goes on as if paused, so the run continues on the
//! same state; the copy is opened by a fresh engine, timed, checked and removed. Killing the
//! child process would measure the same files but end the run; dropping the engine would run
//! its clean close (Bitcask seals its active file, the LSM seals its WAL), which a crash never
//! does.
//!
//! Where the copy holds hint files (Bitcask), it is opened twice: as left, then with every hint
//! removed, so every data file is scanned.
//!
//! **What the run's own figures leave out.** The suite opens the images only after the run has
//! ended and its engine is closed ([`super::Runner::finish_and_recover`]): a second engine open
//! beside the first would count its index in the run's peak resident memory. The copies
//! themselves happen during the run; the bytes they read and write and the CPU they take are
//! subtracted from the run's process totals (`/proc/self/io`, CPU time).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Instant;

use engine_api::{
    Engine, FileLock, IoClass, IoCounters, LockMode, ReadableFile, Result as EngineResult, Storage,
    WritableFile,
};
use serde::{Deserialize, Serialize};

use crate::error::{HarnessError, Result};

/// A storage whose changes can be held still while the harness copies the directory (see the
/// module documentation). Reads are never held.
#[derive(Debug)]
pub struct Freezer {
    inner: Arc<dyn Storage>,
    gate: Arc<RwLock<()>>,
}

impl Freezer {
    /// Wraps `inner`, running.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Freezer {
            inner,
            gate: Arc::default(),
        }
    }

    /// Runs `f` with every change to the files held: calls in flight finish first, new ones wait
    /// until `f` returns.
    pub fn frozen<T>(&self, f: impl FnOnce() -> T) -> T {
        let _held = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        f()
    }

    fn pass(&self) -> RwLockReadGuard<'_, ()> {
        pass(&self.gate)
    }
}

fn pass(gate: &RwLock<()>) -> RwLockReadGuard<'_, ()> {
    gate.read().unwrap_or_else(PoisonError::into_inner)
}

impl Storage for Freezer {
    fn create_dir_all(&self, dir: &Path) -> EngineResult<()> {
        let _pass = self.pass();
        self.inner.create_dir_all(dir)
    }

    fn create(&self, path: &Path, class: IoClass) -> EngineResult<Box<dyn WritableFile>> {
        let _pass = self.pass();
        let inner = self.inner.create(path, class)?;
        Ok(Box::new(Held {
            inner,
            gate: Arc::clone(&self.gate),
        }))
    }

    fn open_append(&self, path: &Path, class: IoClass) -> EngineResult<Box<dyn WritableFile>> {
        let inner = self.inner.open_append(path, class)?;
        Ok(Box::new(Held {
            inner,
            gate: Arc::clone(&self.gate),
        }))
    }

    fn open(&self, path: &Path, class: IoClass) -> EngineResult<Box<dyn ReadableFile>> {
        self.inner.open(path, class)
    }

    fn rename(&self, from: &Path, to: &Path) -> EngineResult<()> {
        let _pass = self.pass();
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> EngineResult<()> {
        let _pass = self.pass();
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> EngineResult<Vec<String>> {
        self.inner.list(dir)
    }

    fn exists(&self, path: &Path) -> EngineResult<bool> {
        self.inner.exists(path)
    }

    fn file_len(&self, path: &Path) -> EngineResult<u64> {
        self.inner.file_len(path)
    }

    fn sync_dir(&self, dir: &Path) -> EngineResult<()> {
        let _pass = self.pass();
        self.inner.sync_dir(dir)
    }

    fn lock(&self, path: &Path, mode: LockMode) -> EngineResult<Box<dyn FileLock>> {
        let _pass = self.pass();
        self.inner.lock(path, mode)
    }
}

/// A file being written through a [`Freezer`].
struct Held {
    inner: Box<dyn WritableFile>,
    gate: Arc<RwLock<()>>,
}

impl WritableFile for Held {
    fn append(&self, data: &[u8]) -> EngineResult<()> {
        let _pass = pass(&self.gate);
        self.inner.append(data)
    }

    fn sync(&self) -> EngineResult<()> {
        let _pass = pass(&self.gate);
        self.inner.sync()
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn truncate(&self, len: u64) -> EngineResult<()> {
        let _pass = pass(&self.gate);
        self.inner.truncate(len)
    }

    fn preallocate(&self, upto: u64) -> EngineResult<()> {
        let _pass = pass(&self.gate);
        self.inner.preallocate(upto)
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}

/// One timed open of a crash image.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RecoverySummary {
    /// The phase after which the engine was crashed.
    pub after: String,
    /// What was opened: `as left`, or `hints removed`.
    pub image: String,
    /// Wall-clock seconds of the open.
    pub open_s: f64,
    /// Live keys at the crash (harness count): what the open must bring back.
    pub keys: u64,
    /// `keys` over `open_s`.
    pub keys_per_sec: f64,
    /// Live keys the reopened engine reports (an estimate for the LSM).
    pub engine_live_keys: u64,
    /// Index memory of the reopened engine, as it reports it.
    pub index_memory_bytes: u64,
    /// Bytes the open read (seam, `Recovery` class).
    pub bytes_read: u64,
    /// Bytes of the crash image.
    pub image_bytes: u64,
    /// Live keys read back after the open to check it (each one must be found).
    pub keys_checked: u64,
}

/// A crash image taken during a run, opened later (see the module documentation).
#[derive(Debug)]
pub(crate) struct PendingImage {
    /// The phase after which the engine was crashed.
    pub(crate) after: String,
    /// The copies to open: `as left`, and `hints removed` where the image had hints.
    pub(crate) images: Vec<(&'static str, PathBuf)>,
    pub(crate) image_bytes: u64,
    /// Live keys at the crash (harness count).
    pub(crate) keys: u64,
    /// Up to 1,000 of them, encoded: each must be found after the open.
    pub(crate) sample: Vec<Vec<u8>>,
}

impl PendingImage {
    /// Copies `dir` to `image` while `freezer` holds every change, and a copy without hints
    /// beside it where the image has hints.
    pub(crate) fn take(freezer: &Freezer, dir: &Path, image: &Path) -> Result<Self> {
        let image_bytes = take_image(freezer, dir, image)?;
        let mut images = vec![("as left", image.to_path_buf())];
        if has_hints(image) {
            let bare = PathBuf::from(format!("{}-no-hints", image.display()));
            copy_dir(image, &bare)?;
            remove_hints(&bare)?;
            images.push(("hints removed", bare));
        }
        Ok(PendingImage {
            after: String::new(),
            images,
            image_bytes,
            keys: 0,
            sample: Vec::new(),
        })
    }

    /// Opens each copy with `reopen` (after dropping the page cache if `cold`), times it,
    /// reads the sample back, and removes the copy.
    pub(crate) fn reopen(
        self,
        engine: &str,
        reopen: &Reopen<'_>,
        cold: bool,
    ) -> Result<Vec<RecoverySummary>> {
        let mut out = Vec::new();
        for (label, path) in &self.images {
            out.push(self.open_one(engine, label, path, reopen, cold));
            let _ = std::fs::remove_dir_all(path);
        }
        out.into_iter().collect()
    }

    fn open_one(
        &self,
        engine: &str,
        label: &str,
        image: &Path,
        reopen: &Reopen<'_>,
        cold: bool,
    ) -> Result<RecoverySummary> {
        let phase = format!("recovery after {} ({label})", self.after);
        if cold {
            crate::isolation::drop_page_cache().map_err(|why| {
                HarnessError::invalid(format!("cannot open '{phase}' cold: {why}"))
            })?;
        }
        let engine_error = |source| HarnessError::Engine {
            engine: engine.to_string(),
            phase: phase.clone(),
            source,
        };
        let (reopened, open_s, bytes_read) = timed_open(reopen, image).map_err(engine_error)?;
        let stats = reopened.stats();
        let keys_checked = check_sample(reopened.as_ref(), &self.sample, engine, &phase)?;
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let keys_per_sec = self.keys as f64 / open_s.max(1e-9);
        Ok(RecoverySummary {
            after: self.after.clone(),
            image: label.to_string(),
            open_s,
            keys: self.keys,
            keys_per_sec,
            engine_live_keys: stats.live_keys,
            index_memory_bytes: stats.index_memory_bytes,
            bytes_read,
            image_bytes: self.image_bytes,
            keys_checked,
        })
    }
}

/// Reads back every key of `sample`: each must be found.
fn check_sample(
    reopened: &dyn Engine,
    sample: &[Vec<u8>],
    engine: &str,
    phase: &str,
) -> Result<u64> {
    for key in sample {
        let found = reopened.get(key).map_err(|source| HarnessError::Engine {
            engine: engine.to_string(),
            phase: phase.to_string(),
            source,
        })?;
        if found.is_none() {
            return Err(HarnessError::WrongAnswer {
                engine: engine.to_string(),
                phase: phase.to_string(),
                detail: format!(
                    "live key {} was not found after the crash and reopen",
                    String::from_utf8_lossy(key)
                ),
            });
        }
    }
    Ok(sample.len() as u64)
}

/// Opens an engine on a directory with fresh harness counters.
pub type Reopen<'a> = dyn Fn(&Path) -> EngineResult<(Arc<dyn Engine>, Arc<IoCounters>)> + 'a;

/// The crash image of `dir`, taken while `freezer` holds every change, at `image`.
///
/// # Errors
/// The copy failed.
pub(crate) fn take_image(freezer: &Freezer, dir: &Path, image: &Path) -> Result<u64> {
    freezer.frozen(|| copy_dir(dir, image))
}

/// Copies a directory tree; returns the bytes copied.
pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<u64> {
    std::fs::create_dir_all(to).map_err(|e| HarnessError::io("create", to, e))?;
    let mut bytes = 0;
    let entries = std::fs::read_dir(from).map_err(|e| HarnessError::io("list", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| HarnessError::io("list", from, e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .map_err(|e| HarnessError::io("stat", &source, e))?;
        bytes += if kind.is_dir() {
            copy_dir(&source, &target)?
        } else {
            std::fs::copy(&source, &target).map_err(|e| HarnessError::io("copy", &source, e))?
        };
    }
    Ok(bytes)
}

/// Removes every hint file of an image; whether there was one.
pub(crate) fn remove_hints(image: &Path) -> Result<bool> {
    let mut removed = false;
    let entries = std::fs::read_dir(image).map_err(|e| HarnessError::io("list", image, e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| HarnessError::io("list", image, e))?
            .path();
        if path.extension().is_some_and(|e| e == "hint") {
            std::fs::remove_file(&path).map_err(|e| HarnessError::io("remove", &path, e))?;
            removed = true;
        }
    }
    Ok(removed)
}

/// Whether an image holds hint files.
pub(crate) fn has_hints(image: &Path) -> bool {
    std::fs::read_dir(image).is_ok_and(|entries| {
        entries
            .filter_map(std::result::Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "hint"))
    })
}

/// Where the crash image of `dir` goes: beside it.
pub(crate) fn image_dir(dir: &Path) -> PathBuf {
    let name = dir.file_name().map_or_else(
        || "crash-image".into(),
        |n| format!("{}.crash-image", n.to_string_lossy()),
    );
    dir.with_file_name(name)
}

/// Opens `image` and times it; the engine comes back for checking.
pub(crate) fn timed_open(
    reopen: &Reopen<'_>,
    image: &Path,
) -> EngineResult<(Arc<dyn Engine>, f64, u64)> {
    let started = Instant::now();
    let (engine, counters) = reopen(image)?;
    let seconds = started.elapsed().as_secs_f64();
    let read = counters.snapshot().class(IoClass::Recovery).bytes_read;
    Ok((engine, seconds, read))
}
