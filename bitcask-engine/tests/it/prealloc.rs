//! Preallocation of the active data file (`docs/durability.md`, "Bitcask data-file
//! preallocation"; `docs/formats/bitcask-record.md`, "Preallocation"): a synced append stays
//! inside a size set ahead of it, the unused tail is cut before a seal is durable, and a zero
//! tail is the end only of the previous run's active file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::testing::hooked::{Before, Hook, HookedStorage, Op};
use engine_api::{CrashMode, Engine, Error, SimStorage, SyncPolicy};

use crate::common::{contents, data_files, key, on_data, options, tiny_manual, value};

fn open_with(sim: &SimStorage, tiny: bool, read_only: bool, salvage: bool) -> BitcaskEngine {
    try_open(sim, tiny, read_only, salvage).unwrap()
}

fn try_open(
    sim: &SimStorage,
    tiny: bool,
    read_only: bool,
    salvage: bool,
) -> engine_api::Result<BitcaskEngine> {
    let storage = Arc::new(sim.clone());
    let mut o: BitcaskOptions = if tiny {
        tiny_manual(storage, SyncPolicy::Always)
    } else {
        options(storage, SyncPolicy::Always)
    };
    o.merge.auto = false;
    o.common.read_only = read_only;
    o.salvage = salvage;
    BitcaskEngine::open("/db", o)
}

/// One past the last non-zero byte: where the records of a file of [`value`]s end.
fn logical_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |at| at + 1)
}

fn put_all(e: &BitcaskEngine, range: std::ops::Range<u32>, model: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
    for i in range {
        e.put(&key(i), &value(i)).unwrap();
        model.insert(key(i), value(i));
    }
}

/// Every data file's size on `sim` against its length in `e`'s `Stats::files`.
fn sizes_on_disk_and_in_stats(sim: &SimStorage, e: &BitcaskEngine) -> Vec<(String, u64, u64)> {
    let stats = e.stats();
    data_files(sim)
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let on_disk = sim.read_file(p).unwrap().len() as u64;
            let in_stats = stats
                .files
                .iter()
                .find(|f| f.name == name)
                .map_or(0, |f| f.bytes);
            (name, on_disk, in_stats)
        })
        .collect()
}

/// 50 synced puts into the default 128 MiB file: the file is extended ahead of them once, and
/// every later synced append lands inside that size, so its `fdatasync` changes no size.
#[test]
fn synced_puts_land_inside_a_size_preallocated_ahead_of_them() {
    let sim = SimStorage::new();
    let e = open_with(&sim, false, false, false);
    let mut model = BTreeMap::new();
    put_all(&e, 0..1, &mut model);
    let file = data_files(&sim).pop().unwrap();
    let size_after_one = sim.read_file(&file).unwrap().len();
    put_all(&e, 1..50, &mut model);
    let bytes = sim.read_file(&file).unwrap();
    let end = logical_end(&bytes);
    assert!(
        bytes.len() > end,
        "the active file is not preallocated: its size {} is its logical end",
        bytes.len()
    );
    assert_eq!(
        bytes.len(),
        size_after_one,
        "49 synced appends after the first changed the file's size"
    );
    assert_eq!(contents(&e), model);
}

/// A rotation cuts the sealed file's preallocated tail before the seal is synced, and a clean
/// close cuts the last file's: in an image that keeps only what was synced, every sealed file
/// ends at its seal, as long as `Stats` says it is. (Values of 400 bytes: two records fill a
/// 1 KiB file to 884 bytes, so the seal ends before the preallocated size, 1024.)
#[test]
fn a_seal_cuts_the_preallocated_tail_durably() {
    let sim = SimStorage::new();
    let e = open_with(&sim, true, false, false);
    let mut model = BTreeMap::new();
    for i in 0..9 {
        let v = vec![b'x'; 400];
        e.put(&key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    let image = sim.crash(CrashMode::DropUnsynced, 0);
    let sizes = sizes_on_disk_and_in_stats(&image, &e);
    assert!(sizes.len() >= 3, "no rotations: {sizes:?}");
    let (active, sealed) = sizes.split_last().unwrap();
    for (name, on_disk, in_stats) in sealed {
        assert_eq!(
            on_disk, in_stats,
            "sealed {name} on disk against Stats: {sizes:?}"
        );
    }
    assert!(
        active.1 > active.2,
        "the active file was not preallocated: {sizes:?}"
    );
    drop(e);
    let e = open_with(&image, true, true, false);
    assert_eq!(contents(&e), model);
    // A clean close (default options: the seal ends far inside the preallocated size), on a
    // storage no crash froze.
    let sim = SimStorage::new();
    let e = open_with(&sim, false, false, false);
    let mut model = BTreeMap::new();
    put_all(&e, 0..50, &mut model);
    drop(e);
    let closed = sim.crash(CrashMode::DropUnsynced, 0);
    let e = open_with(&closed, false, true, false);
    assert_eq!(contents(&e), model);
    for (name, on_disk, in_stats) in sizes_on_disk_and_in_stats(&closed, &e) {
        assert_eq!(on_disk, in_stats, "{name} after a clean close");
    }
}

/// A crash leaves the active file with its zero tail (synced or not). The reopen takes the
/// zeros for the end, not a torn tail: nothing reported, every acknowledged put kept, and the
/// rewritten file ends at its seal; the read-only and the salvage opens read the same.
#[test]
fn a_zero_tail_ends_the_active_file_and_is_not_a_torn_tail() {
    for mode in CrashMode::ALL {
        let sim = SimStorage::new();
        let e = open_with(&sim, false, false, false);
        let mut model = BTreeMap::new();
        put_all(&e, 0..50, &mut model);
        let image = sim.crash(mode, 7);
        drop(e);
        let file = data_files(&image).pop().unwrap();
        let bytes = image.read_file(&file).unwrap();
        assert!(
            bytes.len() > logical_end(&bytes),
            "{mode:?}: no zero tail to read"
        );
        for (read_only, salvage) in [(true, false), (true, true), (false, false)] {
            let e = open_with(&image, false, read_only, salvage);
            let report = e.recovery_report();
            let what = format!("{mode:?}, read_only {read_only}, salvage {salvage}");
            assert_eq!(report.torn_tails, vec![], "{what}");
            assert_eq!(report.skipped, vec![], "{what}");
            assert_eq!(contents(&e), model, "{what}");
            if read_only {
                // Nothing but the data file and the lock file, which is empty.
                let stats = e.stats();
                let files: u64 = stats.files.iter().map(|f| f.bytes).sum();
                assert_eq!(stats.disk_bytes, files, "{what}: disk bytes against files");
            }
        }
        // The read-write open rewrote the file at its logical end and sealed it.
        let e = open_with(&image, false, false, false);
        for (name, on_disk, in_stats) in sizes_on_disk_and_in_stats(&image, &e) {
            assert_eq!(on_disk, in_stats, "{mode:?}: {name} after the rewrite");
        }
        put_all(&e, 50..51, &mut model);
        drop(e);
        let e = open_with(&image, false, false, false);
        assert_eq!(contents(&e), model, "{mode:?}: after a write and a reopen");
    }
}

/// `Stats::disk_bytes` counts the active file at its logical end, not its sparse zeros.
#[test]
fn disk_bytes_count_the_active_file_at_its_logical_end() {
    let sim = SimStorage::new();
    let e = open_with(&sim, false, false, false);
    put_all(&e, 0..50, &mut BTreeMap::new());
    let file = data_files(&sim).pop().unwrap();
    let bytes = sim.read_file(&file).unwrap();
    let end = logical_end(&bytes) as u64;
    assert!(bytes.len() as u64 > end, "not preallocated");
    let stats = e.stats();
    // Only the data file and the empty lock file are there.
    assert_eq!(stats.file_count, 2, "{stats:?}");
    assert_eq!(
        stats.disk_bytes,
        end,
        "the data file's size is {}",
        bytes.len()
    );
}

fn is_corruption_of(r: &engine_api::Result<BitcaskEngine>, path: &Path) -> bool {
    matches!(r, Err(Error::Corruption { path: p, .. }) if p == path)
}

/// Zeros end only the previous run's active file: a sealed file zeroed from the middle to its
/// end (its seal included) is corruption, and a salvage open reports it as skipped. A guard:
/// the rule held before the preallocation, which must not widen it.
#[test]
fn zeros_ending_a_sealed_file_are_corruption() {
    let sim = SimStorage::new();
    let e = open_with(&sim, true, false, false);
    put_all(&e, 0..30, &mut BTreeMap::new());
    let image = sim.crash(CrashMode::KeepAll, 0);
    drop(e);
    for hint in image.all_files() {
        if hint.extension().is_some_and(|x| x == "hint") {
            image.overwrite_file(&hint, Vec::new());
        }
    }
    let files = data_files(&image);
    assert!(files.len() >= 3, "{files:?}");
    let victim = files[files.len() - 2].clone();
    let mut bytes = image.read_file(&victim).unwrap();
    let half = bytes.len() / 2;
    bytes[half..].fill(0);
    image.overwrite_file(&victim, bytes);
    let strict = try_open(&image, true, true, false);
    assert!(is_corruption_of(&strict, &victim), "{:?}", strict.err());
    let salvage = open_with(&image, true, true, true);
    let skipped = &salvage.recovery_report().skipped;
    assert!(
        skipped.iter().any(|d| d.path == victim),
        "a salvage open skipped {skipped:?}"
    );
}

/// In the active file, damage before its last record is judged by the synced lengths the
/// later records carry, as before the preallocation: zeros or a flipped byte in the middle of
/// synced records, with the zero tail after the records, is corruption, never a torn tail or
/// a zero end. A guard.
#[test]
fn damage_before_the_last_record_of_a_preallocated_file_is_corruption() {
    let sim = SimStorage::new();
    let e = open_with(&sim, false, false, false);
    put_all(&e, 0..200, &mut BTreeMap::new());
    let image = sim.crash(CrashMode::KeepAll, 0);
    drop(e);
    let file = data_files(&image).pop().unwrap();
    let original = image.read_file(&file).unwrap();
    let middle = logical_end(&original) / 2;
    let mut zeroed = original.clone();
    zeroed[middle..middle + 64].fill(0);
    let mut flipped = original.clone();
    flipped[middle] ^= 0x20;
    for (what, bytes) in [("zeroed", zeroed), ("flipped", flipped)] {
        image.overwrite_file(&file, bytes);
        let r = try_open(&image, false, true, false);
        assert!(is_corruption_of(&r, &file), "{what}: {:?}", r.err());
    }
}

/// Faults at the active file's size changes, each armed once.
#[derive(Default)]
struct SizeFaults {
    /// The next data-file append fails before it runs.
    fail_append: AtomicBool,
    /// The next data-file preallocation changes the size, then reports failure (an extending
    /// `ftruncate` that failed halfway, as FUSE, NFS or vfat can).
    extend_then_fail: AtomicBool,
    /// The next data-file truncation fails before it runs.
    fail_truncate: AtomicBool,
    preallocations: AtomicU64,
}

impl Hook for SizeFaults {
    fn before(&self, op: &Op<'_>) -> Before {
        let armed = match op {
            Op::Append(..) => &self.fail_append,
            Op::Truncate(..) => &self.fail_truncate,
            _ => return Before::Run,
        };
        if on_data(op) && armed.swap(false, Ordering::SeqCst) {
            return Before::Fail(op.error("injected"));
        }
        Before::Run
    }

    fn after(&self, op: &Op<'_>, _ok: bool) -> engine_api::Result<()> {
        if !matches!(op, Op::Preallocate(..)) || !on_data(op) {
            return Ok(());
        }
        self.preallocations.fetch_add(1, Ordering::SeqCst);
        if self.extend_then_fail.swap(false, Ordering::SeqCst) {
            return Err(op.error("injected after the size changed"));
        }
        Ok(())
    }
}

fn open_hooked(storage: &HookedStorage<SizeFaults>) -> BitcaskEngine {
    let mut o = options(Arc::new(storage.clone()), SyncPolicy::Always);
    o.merge.auto = false;
    BitcaskEngine::open("/db", o).unwrap()
}

/// A preallocation that failed may still have changed the file's size. The seal must cut the
/// file to its end whatever the writer believes its size is: else zeros follow a durable seal,
/// and the next open refuses the store as corrupt. Here the writer's last preallocation had
/// been cut back by a failed append, so it believed nothing was preallocated.
#[test]
fn a_seal_cuts_a_size_that_a_failed_preallocation_left() {
    let storage = HookedStorage::new(SizeFaults::default());
    let e = open_hooked(&storage);
    let mut model = BTreeMap::new();
    put_all(&e, 0..5, &mut model);
    storage.hook.fail_append.store(true, Ordering::SeqCst);
    assert!(
        e.put(&key(5), &value(5)).is_err(),
        "the append did not fail"
    );
    storage.hook.extend_then_fail.store(true, Ordering::SeqCst);
    assert!(
        e.put(&key(6), &value(6)).is_err(),
        "the preallocation did not fail"
    );
    drop(e);
    for mode in CrashMode::ALL {
        let image = storage.sim.crash(mode, 3);
        let e = try_open(&image, false, false, false);
        let e = e.unwrap_or_else(|err| panic!("{mode:?}: after a clean close: {err}"));
        assert_eq!(contents(&e), model, "{mode:?}");
    }
}

/// A failed preallocation appends nothing and does not poison: the next write preallocates
/// again and is acknowledged.
#[test]
fn a_failed_preallocation_is_tried_again_by_the_next_write() {
    let storage = HookedStorage::new(SizeFaults::default());
    let e = open_hooked(&storage);
    let mut model = BTreeMap::new();
    storage.hook.extend_then_fail.store(true, Ordering::SeqCst);
    assert!(
        e.put(&key(0), &value(0)).is_err(),
        "the preallocation did not fail"
    );
    let tried = storage.hook.preallocations.load(Ordering::SeqCst);
    put_all(&e, 1..3, &mut model);
    let now = storage.hook.preallocations.load(Ordering::SeqCst);
    assert_eq!(now, tried + 1, "preallocations before and after");
    let image = storage.sim.crash(CrashMode::DropUnsynced, 0);
    drop(e);
    let e = open_with(&image, false, false, false);
    assert_eq!(contents(&e), model);
}

/// A failed cut at a seal poisons (the file's size is unknown), and after a power loss the
/// store reopens with every acknowledged write.
#[test]
fn a_failed_cut_at_a_seal_poisons_and_loses_nothing_acknowledged() {
    let storage = HookedStorage::new(SizeFaults::default());
    let e = open_hooked(&storage);
    let mut model = BTreeMap::new();
    put_all(&e, 0..20, &mut model);
    storage.hook.fail_truncate.store(true, Ordering::SeqCst);
    assert!(e.compact().is_err(), "the compaction's seal did not fail");
    let refused = e.put(&key(20), &value(20));
    assert!(
        matches!(refused, Err(Error::Poisoned { .. })),
        "{refused:?}"
    );
    for mode in CrashMode::ALL {
        let image = storage.sim.crash(mode, 5);
        let e = open_with(&image, false, false, false);
        assert_eq!(contents(&e), model, "{mode:?}");
    }
}
