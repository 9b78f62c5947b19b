//! [`SimStorage`]: an in-memory [`Storage`] that knows what a power loss may leave behind.
//!
//! Each file (inode) keeps two images: `live`, what the running process reads, and `durable`,
//! what was covered by the last successful sync. Directory entries have the same split: creates,
//! renames and removes take effect in the live namespace at once and in the durable namespace
//! only at [`Storage::sync_dir`] on their directory; until then they sit in a pending list.
//!
//! [`SimStorage::crash`] freezes the storage (every later call fails, so an abandoned engine and
//! its background threads can do no more harm) and returns a new storage holding one image that a
//! power loss could have left, chosen by a [`CrashMode`] and a seed.
//!
//! Faults: [`SimStorage::inject_fault`] fails the Nth later call of one kind, once or for good;
//! [`SimStorage::set_capacity`] makes appends past a byte budget fail with `StorageFull`. A failed
//! sync behaves as Linux does (Rebello et al., ATC '20): the unsynced bytes are lost from the
//! durable image even if a later sync succeeds, so an engine that retries a failed sync and then
//! acknowledges would be caught by a crash test.
//!
//! Directories follow the same rule as files: a new directory's name is durable only after a
//! sync of its parent (which [`Storage::create_dir_all`] does), and a crash that loses it loses
//! the files inside. Simplifications, each stricter than or equal to ext4: directories are never
//! removed or renamed; renames must stay within one directory; a file sync never makes the
//! file's name durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileLock, IoClass, LockMode, ReadableFile, Storage, WritableFile};
use crate::{Error, Result};

/// What survives of unsynced state when [`SimStorage::crash`] builds a crash image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CrashMode {
    /// Nothing unsynced survives: file data and directory entries are as last synced.
    DropUnsynced,
    /// A random prefix of each file's unsynced tail survives, and a random prefix of each
    /// directory's pending creates, renames and removes (a torn write).
    KeepPrefix,
    /// As `KeepPrefix`, but part of each kept unsynced tail is overwritten with garbage
    /// (appends are not atomic: the size can reach the disk before the data).
    GarbleTail,
    /// All file data survives, synced or not, but every unsynced directory operation is undone
    /// (an unsynced rename reverts, an unsynced remove brings the file back).
    UndoDirOps,
    /// Everything survives: what a process crash leaves, with the page cache intact.
    KeepAll,
    /// The whole unsynced tail of each file survives in length, but a run of bytes in its
    /// first half is garbage: a sync cut by the power loss wrote a later page (a seal, say)
    /// and not an earlier one. Directory operations as in `KeepPrefix`. Not in [`CrashMode::ALL`]
    /// (added after it, for the crash-point runs that ask for it).
    GarbleBeforeEnd,
}

impl CrashMode {
    /// Every mode.
    pub const ALL: [CrashMode; 5] = [
        CrashMode::DropUnsynced,
        CrashMode::KeepPrefix,
        CrashMode::GarbleTail,
        CrashMode::UndoDirOps,
        CrashMode::KeepAll,
    ];

    /// Modes that model a power loss (everything but `KeepAll`).
    pub const POWER_LOSS: [CrashMode; 4] = [
        CrashMode::DropUnsynced,
        CrashMode::KeepPrefix,
        CrashMode::GarbleTail,
        CrashMode::UndoDirOps,
    ];
}

/// A kind of storage call, for fault injection, freezing and call counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultOp {
    /// [`Storage::create`].
    Create,
    /// [`Storage::open`] and [`Storage::open_append`].
    Open,
    /// [`WritableFile::append`].
    Append,
    /// [`ReadableFile::read_exact_at`].
    Read,
    /// [`WritableFile::sync`].
    Sync,
    /// [`Storage::sync_dir`].
    SyncDir,
    /// [`Storage::rename`].
    Rename,
    /// [`Storage::remove`].
    Remove,
    /// [`WritableFile::truncate`].
    Truncate,
}

impl FaultOp {
    /// The calls after which a crash can leave a different durable state: syncs, directory
    /// syncs, renames and removes. Crash tests freeze after each of them in turn.
    pub const DURABILITY_POINTS: [FaultOp; 4] = [
        FaultOp::Sync,
        FaultOp::SyncDir,
        FaultOp::Rename,
        FaultOp::Remove,
    ];
}

/// An in-memory storage that simulates power loss and injects faults. Cloning gives another
/// handle to the same storage.
#[derive(Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("SimStorage")
            .field("files", &s.live.len())
            .field("pending_dir_ops", &s.pending.len())
            .field("frozen", &s.frozen)
            .finish()
    }
}

#[derive(Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    /// Directories whose own name is durable (their parent was synced after their creation).
    durable_dirs: BTreeSet<PathBuf>,
    pending: Vec<DirOp>,
    locks: HashMap<PathBuf, (LockMode, usize)>,
    calls: HashMap<FaultOp, u64>,
    faults: Vec<Fault>,
    freeze: Option<Freeze>,
    capacity: Option<u64>,
    used: u64,
    frozen: bool,
    read_only: bool,
    refused: Vec<String>,
    periodic_syncs: u64,
}

#[derive(Default, Clone)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// `live` no longer extends `durable` (it was truncated below it since the last sync).
    diverged: bool,
    /// Bytes whose sync failed: Linux marks their pages clean, so they never reach the disk.
    lost: Option<(usize, usize)>,
    /// The size [`WritableFile::preallocate`] gave the file: past `live`'s end it reads as
    /// zeros (the file's size is the larger of the two; `live` is the logical end).
    allocated: usize,
    /// `allocated` as of the last sync: a crash keeps at least this size.
    durable_allocated: usize,
}

impl Inode {
    /// The file's size: its bytes and the zeros of a preallocated tail.
    fn size(&self) -> usize {
        self.live.len().max(self.allocated)
    }

    /// `live` with the preallocated tail as zeros, as a reopened file would read.
    fn physical(&self) -> Vec<u8> {
        let mut data = self.live.clone();
        data.resize(self.size(), 0);
        data
    }

    /// Makes the preallocated tail part of the file's bytes (as `open_append` or a crash see
    /// it: nothing on disk tells the logical end).
    fn materialise(&mut self) {
        let size = self.size();
        self.live.resize(size, 0);
        self.allocated = 0;
    }
}

#[derive(Clone, Debug)]
enum DirOp {
    Create {
        path: PathBuf,
        ino: u64,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        ino: u64,
    },
    Remove {
        path: PathBuf,
    },
    MakeDir {
        path: PathBuf,
    },
}

impl DirOp {
    fn dir(&self) -> PathBuf {
        let path = match self {
            DirOp::Create { path, .. } | DirOp::Remove { path } | DirOp::MakeDir { path } => path,
            DirOp::Rename { to, .. } => to,
        };
        parent(path)
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Create { path, ino } => {
                names.insert(path.clone(), *ino);
            }
            DirOp::Rename { from, to, ino } => {
                names.remove(from);
                names.insert(to.clone(), *ino);
            }
            DirOp::Remove { path } => {
                names.remove(path);
            }
            DirOp::MakeDir { .. } => {}
        }
    }
}

struct Fault {
    op: FaultOp,
    remaining: u64,
    sticky: bool,
    fired: bool,
}

struct Freeze {
    ops: Vec<FaultOp>,
    remaining: u64,
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn frozen_error() -> io::Error {
    io::Error::other("simulated power loss: storage is frozen")
}

/// SplitMix64: a tiny deterministic generator, enough to choose crash images from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..=max`.
    fn upto(&mut self, max: usize) -> usize {
        // Truncation is fine: the modulus is at most `max + 1`, which fits in usize.
        #[expect(clippy::cast_possible_truncation, reason = "result is below max + 1")]
        let r = (self.next() % (max as u64 + 1)) as usize;
        r
    }
}

fn read_only_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ReadOnlyFilesystem,
        "simulated read-only file system",
    )
}

impl State {
    /// On a read-only storage, records the call (`op path`) and fails it, as a read-only mount
    /// fails every call that would change it with `EROFS`.
    fn refuse_if_read_only(&mut self, op: &str, path: &Path) -> io::Result<()> {
        if self.read_only {
            self.refused.push(format!("{op} {}", path.display()));
            return Err(read_only_error());
        }
        Ok(())
    }

    /// Counts a call, applies armed faults, and reports whether the call must fail.
    fn enter(&mut self, op: FaultOp) -> io::Result<()> {
        if self.frozen {
            return Err(frozen_error());
        }
        *self.calls.entry(op).or_default() += 1;
        let mut fail = false;
        for fault in self.faults.iter_mut().filter(|f| f.op == op) {
            if fault.fired && fault.sticky {
                fail = true;
            } else if !fault.fired {
                if fault.remaining == 0 {
                    fault.fired = true;
                    fail = true;
                } else {
                    fault.remaining -= 1;
                }
            }
        }
        if fail {
            return Err(io::Error::other(format!("injected fault on {op:?}")));
        }
        Ok(())
    }

    /// Called after a call succeeded: freezes the storage if a freeze point was reached.
    fn leave(&mut self, op: FaultOp) {
        if let Some(freeze) = &mut self.freeze
            && freeze.ops.contains(&op)
        {
            if freeze.remaining <= 1 {
                self.frozen = true;
                self.freeze = None;
            } else {
                freeze.remaining -= 1;
            }
        }
    }

    fn inode_of(&self, path: &Path) -> io::Result<u64> {
        self.live
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        if self.dirs.contains(&parent(path)) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "parent directory does not exist",
            ))
        }
    }

    fn referenced(&self, ino: u64) -> bool {
        self.live.values().any(|&i| i == ino)
    }

    fn release_if_unreferenced(&mut self, ino: u64) {
        if !self.referenced(ino)
            && let Some(inode) = self.inodes.get(&ino)
        {
            self.used = self.used.saturating_sub(inode.live.len() as u64);
        }
    }

    fn create(&mut self, path: &Path) -> io::Result<u64> {
        self.check_parent(path)?;
        if self.live.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
        }
        self.next_ino += 1;
        let ino = self.next_ino;
        self.inodes.insert(ino, Inode::default());
        self.live.insert(path.to_path_buf(), ino);
        self.pending.push(DirOp::Create {
            path: path.to_path_buf(),
            ino,
        });
        Ok(ino)
    }

    fn append(&mut self, ino: u64, data: &[u8]) -> io::Result<()> {
        if let Some(cap) = self.capacity
            && self.used + data.len() as u64 > cap
        {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        let inode = self.inodes.get_mut(&ino).ok_or_else(frozen_error)?;
        inode.live.extend_from_slice(data);
        self.used += data.len() as u64;
        Ok(())
    }

    fn sync_file(&mut self, ino: u64) {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        if inode.diverged || inode.durable.len() > inode.live.len() {
            inode.durable.clone_from(&inode.live);
            inode.diverged = false;
        } else if let Some(tail) = inode.live.get(inode.durable.len()..) {
            let tail = tail.to_vec();
            inode.durable.extend_from_slice(&tail);
        }
        inode.durable_allocated = inode.allocated;
        if let Some((start, end)) = inode.lost {
            let end = end.min(inode.durable.len());
            if let Some(lost) = inode.durable.get_mut(start..end) {
                lost.fill(0);
            }
        }
    }

    fn fail_sync(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            let start = inode.durable.len().min(inode.live.len());
            inode.lost = Some((start, inode.live.len()));
        }
    }

    fn sync_dir(&mut self, dir: &Path) {
        self.durable.retain(|p, _| parent(p) != dir);
        for (path, ino) in &self.live {
            if parent(path) == dir {
                self.durable.insert(path.clone(), *ino);
            }
        }
        self.pending.retain(|op| op.dir() != dir);
        let children: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|d| parent(d) == dir)
            .cloned()
            .collect();
        self.durable_dirs.extend(children);
    }

    /// Creates `dir` and its missing ancestors in the live view. Their names are durable only
    /// after a sync of their parent; a directory without a parent (the root) is durable at once.
    fn make_dirs(&mut self, dir: &Path) {
        for ancestor in dir.ancestors() {
            if !self.dirs.insert(ancestor.to_path_buf()) {
                continue;
            }
            if parent(ancestor).as_os_str().is_empty() {
                self.durable_dirs.insert(ancestor.to_path_buf());
            } else {
                self.pending.push(DirOp::MakeDir {
                    path: ancestor.to_path_buf(),
                });
            }
        }
    }

    /// Builds the state a power loss could leave, in `mode`, with choices drawn from `rng`.
    fn crash_image(&self, mode: CrashMode, rng: &mut Rng) -> State {
        let (names, dirs) = self.crash_names(mode, rng);
        let mut image = State {
            durable_dirs: dirs.clone(),
            dirs,
            next_ino: self.next_ino,
            ..State::default()
        };
        for (path, &ino) in &names {
            if !image.dirs.contains(&parent(path)) {
                // Its directory's name was never made durable: the file went with it.
                continue;
            }
            if image.inodes.contains_key(&ino) {
                // A second name for one inode cannot arise from create/rename/remove alone.
                continue;
            }
            let data = self
                .inodes
                .get(&ino)
                .map(|inode| with_allocation(inode, mode, crash_data(inode, mode, rng)))
                .unwrap_or_default();
            image.used += data.len() as u64;
            image.inodes.insert(
                ino,
                Inode {
                    durable: data.clone(),
                    live: data,
                    ..Inode::default()
                },
            );
            image.live.insert(path.clone(), ino);
        }
        image.durable = image.live.clone();
        image
    }

    /// The file names and directories a crash in `mode` leaves.
    fn crash_names(
        &self,
        mode: CrashMode,
        rng: &mut Rng,
    ) -> (BTreeMap<PathBuf, u64>, BTreeSet<PathBuf>) {
        let (names, mut dirs) = match mode {
            CrashMode::KeepAll => (self.live.clone(), self.dirs.clone()),
            CrashMode::DropUnsynced | CrashMode::UndoDirOps => {
                (self.durable.clone(), self.durable_dirs.clone())
            }
            CrashMode::KeepPrefix | CrashMode::GarbleTail | CrashMode::GarbleBeforeEnd => {
                self.kept_prefix(rng)
            }
        };
        // A directory survives only if every ancestor did.
        let orphans: Vec<PathBuf> = dirs
            .iter()
            .filter(|d| d.ancestors().skip(1).any(|a| !dirs.contains(a)))
            .cloned()
            .collect();
        for orphan in orphans {
            dirs.remove(&orphan);
        }
        (names, dirs)
    }

    /// Each directory keeps a random prefix of its own pending operations.
    fn kept_prefix(&self, rng: &mut Rng) -> (BTreeMap<PathBuf, u64>, BTreeSet<PathBuf>) {
        // Each directory keeps a random prefix of its own pending operations.
        let mut per_dir: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for op in &self.pending {
            *per_dir.entry(op.dir()).or_default() += 1;
        }
        let keep: BTreeMap<PathBuf, usize> = per_dir
            .into_iter()
            .map(|(dir, n)| (dir, rng.upto(n)))
            .collect();
        let mut seen: BTreeMap<PathBuf, usize> = BTreeMap::new();
        let mut names = self.durable.clone();
        let mut dirs = self.durable_dirs.clone();
        for op in &self.pending {
            let dir = op.dir();
            let index = seen.entry(dir.clone()).or_default();
            if *index < keep.get(&dir).copied().unwrap_or(0) {
                op.apply(&mut names);
                if let DirOp::MakeDir { path } = op {
                    dirs.insert(path.clone());
                }
            }
            *index += 1;
        }
        (names, dirs)
    }
}

fn crash_data(inode: &Inode, mode: CrashMode, rng: &mut Rng) -> Vec<u8> {
    let extends = !inode.diverged && inode.live.len() >= inode.durable.len();
    match mode {
        CrashMode::DropUnsynced => inode.durable.clone(),
        CrashMode::KeepAll | CrashMode::UndoDirOps => inode.live.clone(),
        CrashMode::GarbleBeforeEnd if extends => {
            let mut data = inode.live.clone();
            let tail = data.len() - inode.durable.len();
            if tail > 0 {
                let start = inode.durable.len();
                garble(&mut data[start..start + tail.div_ceil(2)], rng);
            }
            data
        }
        CrashMode::KeepPrefix | CrashMode::GarbleTail | CrashMode::GarbleBeforeEnd if !extends => {
            if rng.upto(1) == 0 {
                inode.durable.clone()
            } else {
                inode.live.clone()
            }
        }
        CrashMode::KeepPrefix | CrashMode::GarbleTail | CrashMode::GarbleBeforeEnd => {
            let tail = inode.live.get(inode.durable.len()..).unwrap_or_default();
            let mut data = inode.durable.clone();
            if tail.is_empty() {
                return data;
            }
            let keep = if mode == CrashMode::GarbleTail {
                1 + rng.upto(tail.len() - 1)
            } else {
                rng.upto(tail.len())
            };
            let start = data.len();
            data.extend_from_slice(tail.get(..keep).unwrap_or_default());
            if mode == CrashMode::GarbleTail {
                garble(&mut data[start..], rng);
            }
            data
        }
    }
}

/// `data` (what a crash kept of a file's bytes) followed by the zeros of the preallocated size
/// the crash keeps: all of it when every unsynced change survives, else as of the last sync.
fn with_allocation(inode: &Inode, mode: CrashMode, mut data: Vec<u8>) -> Vec<u8> {
    let size = match mode {
        CrashMode::KeepAll | CrashMode::UndoDirOps => inode.allocated,
        _ => inode.durable_allocated,
    };
    if data.len() < size {
        data.resize(size, 0);
    }
    data
}

/// Overwrites a random run of `bytes` with garbage, changing at least one byte.
fn garble(bytes: &mut [u8], rng: &mut Rng) {
    let from = rng.upto(bytes.len() - 1);
    let to = from + 1 + rng.upto(bytes.len() - from - 1);
    for b in &mut bytes[from..to] {
        // `| 1` keeps the xor mask non-zero, so every byte in the run changes.
        #[expect(clippy::cast_possible_truncation, reason = "taking the low byte")]
        let mask = (rng.next() as u8) | 1;
        *b ^= mask;
    }
}

impl SimStorage {
    /// An empty storage with no directories.
    pub fn new() -> Self {
        SimStorage::default()
    }

    /// Freezes this storage (every later call fails) and returns a new storage holding one
    /// image a crash in `mode` could leave. The same `seed` gives the same image.
    pub fn crash(&self, mode: CrashMode, seed: u64) -> SimStorage {
        let mut state = self.state.lock();
        state.frozen = true;
        let mut rng = Rng(seed);
        let image = state.crash_image(mode, &mut rng);
        SimStorage {
            state: Arc::new(Mutex::new(image)),
        }
    }

    /// Stops all I/O: every later call fails, as if the machine had lost power.
    pub fn freeze(&self) {
        self.state.lock().frozen = true;
    }

    /// Whether the storage is frozen.
    pub fn is_frozen(&self) -> bool {
        self.state.lock().frozen
    }

    /// Freezes the storage right after the `n`th (1-based, counted from now) successful call of
    /// any kind in `ops`. Crash tests use it to stop a workload at each durability point.
    pub fn freeze_after(&self, ops: &[FaultOp], n: u64) {
        self.state.lock().freeze = Some(Freeze {
            ops: ops.to_vec(),
            remaining: n.max(1),
        });
    }

    /// Makes the call of kind `op` that comes after `skip` further such calls fail. With
    /// `sticky`, every call of that kind fails from then on.
    pub fn inject_fault(&self, op: FaultOp, skip: u64, sticky: bool) {
        self.state.lock().faults.push(Fault {
            op,
            remaining: skip,
            sticky,
            fired: false,
        });
    }

    /// Removes every armed fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Whether any injected fault has fired.
    pub fn fault_fired(&self) -> bool {
        self.state.lock().faults.iter().any(|f| f.fired)
    }

    /// Limits the bytes all live files may hold; appends past it fail with `StorageFull`.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().capacity = bytes;
    }

    /// How many calls of kind `op` were made (failed ones included).
    pub fn calls(&self, op: FaultOp) -> u64 {
        self.state.lock().calls.get(&op).copied().unwrap_or(0)
    }

    /// How many file syncs a [`crate::PeriodicTask`] thread completed successfully. A sync is
    /// atomic here, so a count that grew by two since a write was acknowledged means a whole
    /// run of the task began after it (one run syncs at most once).
    pub fn periodic_syncs(&self) -> u64 {
        self.state.lock().periodic_syncs
    }

    /// How many calls of any kind in `ops` were made.
    pub fn calls_of(&self, ops: &[FaultOp]) -> u64 {
        ops.iter().map(|op| self.calls(*op)).sum()
    }

    /// The live contents of a file, for tests that damage files on purpose.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.lock();
        let ino = s.live.get(path)?;
        s.inodes.get(ino).map(Inode::physical)
    }

    /// Replaces the contents of a file, durably, bypassing every fault and freeze. For tests
    /// that damage files on purpose.
    pub fn overwrite_file(&self, path: &Path, data: Vec<u8>) -> bool {
        let mut s = self.state.lock();
        let Some(&ino) = s.live.get(path) else {
            return false;
        };
        let Some(inode) = s.inodes.get_mut(&ino) else {
            return false;
        };
        let old = inode.live.len() as u64;
        inode.durable.clone_from(&data);
        inode.live = data;
        inode.diverged = false;
        inode.allocated = 0;
        inode.durable_allocated = 0;
        let new = inode.live.len() as u64;
        s.used = s.used.saturating_sub(old) + new;
        true
    }

    /// Makes the storage read-only (or writable again), as a read-only mount or a directory
    /// the user cannot write: every call that would change it fails with
    /// `ErrorKind::ReadOnlyFilesystem` and is recorded in [`SimStorage::refused_writes`].
    /// Reads, listings and shared locks on existing or missing lock files still work.
    pub fn set_read_only(&self, read_only: bool) {
        self.state.lock().read_only = read_only;
    }

    /// Every call refused because the storage was read-only, as `operation path`, oldest first.
    pub fn refused_writes(&self) -> Vec<String> {
        self.state.lock().refused.clone()
    }

    /// Names of every live file, with full paths.
    pub fn all_files(&self) -> Vec<PathBuf> {
        self.state.lock().live.keys().cloned().collect()
    }

    fn io<T>(&self, op: &'static str, path: &Path, r: io::Result<T>) -> Result<T> {
        r.map_err(|e| Error::io(op, path, e))
    }

    /// A call that changes the storage: refused (and recorded) while read-only.
    fn write_call<T>(
        &self,
        kind: FaultOp,
        op: &'static str,
        path: &Path,
        f: impl FnOnce(&mut State) -> io::Result<T>,
    ) -> Result<T> {
        self.call(kind, op, path, |s| {
            s.refuse_if_read_only(op, path)?;
            f(s)
        })
    }

    fn call<T>(
        &self,
        kind: FaultOp,
        op: &'static str,
        path: &Path,
        f: impl FnOnce(&mut State) -> io::Result<T>,
    ) -> Result<T> {
        let mut s = self.state.lock();
        let r = s.enter(kind).and_then(|()| f(&mut s));
        if r.is_ok() {
            s.leave(kind);
        }
        drop(s);
        self.io(op, path, r)
    }

    fn plain<T>(
        &self,
        op: &'static str,
        path: &Path,
        f: impl FnOnce(&mut State) -> io::Result<T>,
    ) -> Result<T> {
        let mut s = self.state.lock();
        let r = if s.frozen {
            Err(frozen_error())
        } else {
            f(&mut s)
        };
        drop(s);
        self.io(op, path, r)
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.plain("create_dir", dir, |s| {
            if !s.dirs.contains(dir) {
                s.refuse_if_read_only("create_dir", dir)?;
            }
            s.make_dirs(dir);
            Ok(())
        })?;
        // As OsStorage does: sync the parent of every component (not only of new ones, which an
        // earlier call cut off before its syncs may have left), outermost first.
        let components: Vec<&Path> = dir
            .ancestors()
            .filter(|c| !parent(c).as_os_str().is_empty())
            .collect();
        for component in components.into_iter().rev() {
            self.sync_dir(&parent(component))?;
        }
        Ok(())
    }

    fn create(&self, path: &Path, _class: IoClass) -> Result<Box<dyn WritableFile>> {
        let ino = self.write_call(FaultOp::Create, "create", path, |s| s.create(path))?;
        Ok(Box::new(SimFile {
            sim: self.clone(),
            ino,
            path: path.to_path_buf(),
        }))
    }

    fn open_append(&self, path: &Path, _class: IoClass) -> Result<Box<dyn WritableFile>> {
        let ino = self.write_call(FaultOp::Open, "open_append", path, |s| {
            let ino = s.inode_of(path)?;
            // Appends go after a preallocated tail's zeros, as on a real file system.
            if let Some(inode) = s.inodes.get_mut(&ino) {
                inode.materialise();
            }
            Ok(ino)
        })?;
        Ok(Box::new(SimFile {
            sim: self.clone(),
            ino,
            path: path.to_path_buf(),
        }))
    }

    fn open(&self, path: &Path, _class: IoClass) -> Result<Box<dyn ReadableFile>> {
        let ino = self.call(FaultOp::Open, "open", path, |s| s.inode_of(path))?;
        Ok(Box::new(SimFile {
            sim: self.clone(),
            ino,
            path: path.to_path_buf(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.write_call(FaultOp::Rename, "rename", from, |s| {
            if parent(from) != parent(to) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "SimStorage renames only within one directory",
                ));
            }
            let ino = s.inode_of(from)?;
            s.live.remove(from);
            if let Some(old) = s.live.insert(to.to_path_buf(), ino) {
                s.release_if_unreferenced(old);
            }
            s.pending.push(DirOp::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                ino,
            });
            Ok(())
        })
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.write_call(FaultOp::Remove, "remove", path, |s| {
            let ino = s.inode_of(path)?;
            s.live.remove(path);
            s.release_if_unreferenced(ino);
            s.pending.push(DirOp::Remove {
                path: path.to_path_buf(),
            });
            Ok(())
        })
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.plain("list", dir, |s| {
            if !s.dirs.contains(dir) {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
            }
            Ok(s.live
                .keys()
                .filter(|p| parent(p) == dir)
                .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
                .collect())
        })
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        self.plain("stat", path, |s| {
            Ok(s.live.contains_key(path) || s.dirs.contains(path))
        })
    }

    fn file_len(&self, path: &Path) -> Result<u64> {
        self.plain("stat", path, |s| {
            let ino = s.inode_of(path)?;
            Ok(s.inodes.get(&ino).map_or(0, |i| i.size() as u64))
        })
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.write_call(FaultOp::SyncDir, "sync_dir", dir, |s| {
            s.sync_dir(dir);
            Ok(())
        })
    }

    fn lock(&self, path: &Path, mode: LockMode) -> Result<Box<dyn FileLock>> {
        let mut s = self.state.lock();
        if s.frozen {
            return Err(Error::io("lock", path, frozen_error()));
        }
        let held = s.locks.get(path).copied();
        let conflict = match (held, mode) {
            (None, _) => false,
            (Some((LockMode::Shared, _)), LockMode::Shared) => false,
            (Some(_), _) => true,
        };
        if conflict {
            return Err(Error::Locked {
                path: path.to_path_buf(),
            });
        }
        // A shared lock never creates its file: a read-only open must write nothing. Locks are
        // keyed by path, so a shared holder of a missing file still excludes a writer.
        if mode == LockMode::Exclusive && !s.live.contains_key(path) {
            s.refuse_if_read_only("lock", path)
                .and_then(|()| s.create(path))
                .map_err(|e| Error::io("lock", path, e))?;
        }
        let count = held.map_or(0, |(_, c)| c);
        s.locks.insert(path.to_path_buf(), (mode, count + 1));
        Ok(Box::new(SimLock {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
        }))
    }
}

struct SimFile {
    sim: SimStorage,
    ino: u64,
    path: PathBuf,
}

impl WritableFile for SimFile {
    fn append(&self, data: &[u8]) -> Result<()> {
        self.sim
            .write_call(FaultOp::Append, "append", &self.path, |s| {
                s.append(self.ino, data)
            })
    }

    fn sync(&self) -> Result<()> {
        let mut s = self.sim.state.lock();
        let r = s
            .enter(FaultOp::Sync)
            .and_then(|()| s.refuse_if_read_only("sync", &self.path));
        match &r {
            Ok(()) => {
                s.sync_file(self.ino);
                if crate::durability::in_periodic_task() {
                    s.periodic_syncs += 1;
                }
                s.leave(FaultOp::Sync);
            }
            Err(_) if !s.frozen => s.fail_sync(self.ino),
            Err(_) => {}
        }
        drop(s);
        self.sim.io("sync", &self.path, r)
    }

    fn len(&self) -> u64 {
        let s = self.sim.state.lock();
        s.inodes.get(&self.ino).map_or(0, |i| i.live.len() as u64)
    }

    fn truncate(&self, len: u64) -> Result<()> {
        self.sim
            .write_call(FaultOp::Truncate, "truncate", &self.path, |s| {
                let inode = s.inodes.get_mut(&self.ino).ok_or_else(frozen_error)?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len < inode.live.len() {
                    let cut = (inode.live.len() - len) as u64;
                    inode.live.truncate(len);
                    if len < inode.durable.len() {
                        inode.diverged = true;
                    }
                    s.used = s.used.saturating_sub(cut);
                } else if len > inode.live.len() {
                    // The file's length is exactly `len`: zeros up to it become its bytes.
                    s.used += (len - inode.live.len()) as u64;
                    inode.live.resize(len, 0);
                }
                inode.allocated = 0;
                Ok(())
            })
    }

    fn preallocate(&self, upto: u64) -> Result<()> {
        // `set_len` upwards, as `truncate` is `set_len` downwards: one fault kind for both.
        self.sim
            .write_call(FaultOp::Truncate, "preallocate", &self.path, |s| {
                let inode = s.inodes.get_mut(&self.ino).ok_or_else(frozen_error)?;
                let upto = usize::try_from(upto).unwrap_or(usize::MAX);
                inode.allocated = inode.allocated.max(upto);
                Ok(())
            })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl ReadableFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.sim.call(FaultOp::Read, "read", &self.path, |s| {
            let inode = s.inodes.get(&self.ino).ok_or_else(frozen_error)?;
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let end = start
                .checked_add(buf.len())
                .filter(|&end| end <= inode.size())
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"))?;
            // Bytes of a preallocated tail read as zeros.
            let written = inode
                .live
                .get(start.min(inode.live.len())..end.min(inode.live.len()));
            let written = written.unwrap_or_default();
            buf[..written.len()].copy_from_slice(written);
            buf[written.len()..].fill(0);
            Ok(())
        })
    }

    fn len(&self) -> Result<u64> {
        let s = self.sim.state.lock();
        Ok(s.inodes.get(&self.ino).map_or(0, |i| i.size() as u64))
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl FileLock for SimLock {
    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.state.lock();
        if let Some((_, count)) = s.locks.get_mut(&self.path) {
            *count -= 1;
            if *count == 0 {
                s.locks.remove(&self.path);
            }
        }
    }
}
