//! [`GatedStorage`]: a [`SimStorage`] whose next file sync, once armed, waits at a gate the test
//! opens, so that a test can look at an engine while a write is appended but not yet durable.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::{FileLock, IoClass, LockMode, ReadableFile, Result, SimStorage, Storage, WritableFile};

/// A one-shot gate: once armed, the next [`WritableFile::sync`] waits at it until it is opened.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    armed: bool,
    /// A sync is waiting at the gate.
    holding: bool,
    open: bool,
}

impl Gate {
    /// Arms the gate: the next sync will wait at it.
    pub fn arm(&self) {
        *self.state.lock() = GateState {
            armed: true,
            ..GateState::default()
        };
    }

    fn pass(&self) {
        let mut st = self.state.lock();
        if !st.armed {
            return;
        }
        st.armed = false;
        st.holding = true;
        self.cv.notify_all();
        while !st.open {
            self.cv.wait(&mut st);
        }
        st.holding = false;
    }

    /// Waits until a sync is held at the gate; panics after ten seconds without one.
    pub fn wait_holding(&self) {
        let mut st = self.state.lock();
        while !st.holding {
            let waited = self.cv.wait_for(&mut st, Duration::from_secs(10));
            assert!(
                !waited.timed_out() || st.holding,
                "no sync reached the gate"
            );
        }
    }

    /// Opens the gate: the held sync (and every later one) goes on.
    pub fn open(&self) {
        self.state.lock().open = true;
        self.cv.notify_all();
    }
}

/// A [`SimStorage`] with every writable file's `sync` passing through a [`Gate`] first.
#[derive(Clone)]
pub struct GatedStorage {
    /// The storage underneath (inject faults here).
    pub sim: SimStorage,
    /// The gate every sync passes.
    pub gate: Arc<Gate>,
}

impl GatedStorage {
    /// A fresh, empty storage with a closed, unarmed gate.
    pub fn new() -> Self {
        GatedStorage {
            sim: SimStorage::new(),
            gate: Arc::default(),
        }
    }

    fn wrap(&self, file: Box<dyn WritableFile>) -> Box<dyn WritableFile> {
        Box::new(GatedFile {
            file,
            gate: Arc::clone(&self.gate),
        })
    }
}

impl Default for GatedStorage {
    fn default() -> Self {
        GatedStorage::new()
    }
}

impl fmt::Debug for GatedStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedStorage")
            .field("sim", &self.sim)
            .finish()
    }
}

struct GatedFile {
    file: Box<dyn WritableFile>,
    gate: Arc<Gate>,
}

impl WritableFile for GatedFile {
    fn append(&self, data: &[u8]) -> Result<()> {
        self.file.append(data)
    }
    fn sync(&self) -> Result<()> {
        self.gate.pass();
        self.file.sync()
    }
    fn len(&self) -> u64 {
        self.file.len()
    }
    fn truncate(&self, len: u64) -> Result<()> {
        self.file.truncate(len)
    }
    fn preallocate(&self, upto: u64) -> Result<()> {
        self.file.preallocate(upto)
    }
    fn path(&self) -> &Path {
        self.file.path()
    }
}

impl Storage for GatedStorage {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.sim.create_dir_all(dir)
    }
    fn create(&self, path: &Path, class: IoClass) -> Result<Box<dyn WritableFile>> {
        Ok(self.wrap(self.sim.create(path, class)?))
    }
    fn open_append(&self, path: &Path, class: IoClass) -> Result<Box<dyn WritableFile>> {
        Ok(self.wrap(self.sim.open_append(path, class)?))
    }
    fn open(&self, path: &Path, class: IoClass) -> Result<Box<dyn ReadableFile>> {
        self.sim.open(path, class)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.sim.rename(from, to)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        self.sim.remove(path)
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
        self.sim.sync_dir(dir)
    }
    fn lock(&self, path: &Path, mode: LockMode) -> Result<Box<dyn FileLock>> {
        self.sim.lock(path, mode)
    }
}
