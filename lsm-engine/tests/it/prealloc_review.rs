//! The WAL preallocation's zero tail is the end only of the newest WAL (`docs/formats/wal.md`,
//! "Preallocation" and "Reading and damage"; `docs/durability.md`, "LSM WAL preallocation"),
//! and its sparse zeros are not counted as disk bytes. Found by a second reader of the
//! preallocation; each test failed before its fix.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_api::{CommonOptions, CrashMode, Engine, Error, FaultOp, SimStorage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::common::{files_with, key, tiny_options, value};

fn options(sim: &SimStorage, read_only: bool) -> LsmOptions {
    let base = LsmOptions {
        memtable_bytes: 1 << 20,
        ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Always)
    };
    LsmOptions {
        common: CommonOptions {
            read_only,
            ..base.common.clone()
        },
        ..base
    }
}

/// Start offsets of the records of a WAL (header record first).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if len == 0 {
            break; // the zero tail
        }
        offsets.push(at);
        at += 9 + len;
    }
    offsets
}

/// 20 acknowledged puts (`Always`) in WAL `N`, then a rotation (`flush`) cut by a power loss
/// right after the new WAL's directory sync: `N` is sealed (cut and synced), `N+1` exists but
/// its header was never synced, and the flush never ran. Returns the image and `N`'s path.
fn sealed_wal_then_headerless_newest() -> (SimStorage, std::path::PathBuf) {
    let running = SimStorage::new();
    let e = Arc::new(LsmEngine::open("/db", options(&running, false)).unwrap());
    for i in 0..20 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    // Rotation: seal (truncate, sync) N, create N+1, append its header, sync the directory.
    running.freeze_after(&[FaultOp::SyncDir], 1);
    let flusher = Arc::clone(&e);
    std::thread::spawn(move || flusher.flush());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !running.is_frozen() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        running.is_frozen(),
        "the rotation never synced the directory"
    );
    let sim = running.crash(CrashMode::DropUnsynced, 0);
    let wals = files_with(&sim, ".log");
    assert_eq!(wals.len(), 2, "{wals:?}");
    assert_eq!(
        sim.read_file(&wals[1]).unwrap().len(),
        0,
        "the newest WAL's header was never synced"
    );
    // Control: before any damage every acknowledged write is there.
    let ro = LsmEngine::open("/db", options(&sim, true)).unwrap();
    for i in 0..20 {
        assert_eq!(ro.get(&key(i)).unwrap(), Some(value(i, 0).into()), "{i}");
    }
    drop(ro);
    (sim, wals[0].clone())
}

fn is_corruption_of(r: &Result<LsmEngine, Error>, path: &Path) -> bool {
    matches!(r, Err(Error::Corruption { path: p, .. }) if p == path)
}

/// A sealed (rotated, synced) WAL whose last records the device zeroed is reported even when
/// the newest WAL has no header (a rotation's new WAL before its first sync), so no successor
/// header records the sealed WAL's length: the zero tail is the end only of the newest WAL
/// (it once was taken for the end of any WAL, losing keys 15..19 silently). Durability rule:
/// only a tail that was never synced may be cut; damage anywhere else is reported. The same
/// damage as a flipped byte is reported (checked first, as a control).
#[test]
fn a_zero_tail_ends_only_the_newest_wal_a_sealed_one_zeroed_to_its_end_is_corruption() {
    let (sim, sealed) = sealed_wal_then_headerless_newest();
    let original = sim.read_file(&sealed).unwrap();
    let offsets = record_offsets(&original);
    assert_eq!(offsets.len(), 21, "header + 20 batches");
    let from = offsets[16]; // keys 15..19
    assert_eq!(
        original.len(),
        *offsets.last().unwrap() + 9 + {
            let at = *offsets.last().unwrap();
            u32::from_le_bytes(original[at + 4..at + 8].try_into().unwrap()) as usize
        },
        "the sealed WAL ends at its last record (no zero tail)"
    );

    let mut flipped = original.clone();
    flipped[from + 12] ^= 0x10;
    sim.overwrite_file(&sealed, flipped);
    let control = LsmEngine::open("/db", options(&sim, true));
    assert!(
        is_corruption_of(&control, &sealed),
        "control: a flipped byte is reported"
    );
    drop(control);

    let mut zeroed = original.clone();
    zeroed[from..].fill(0);
    sim.overwrite_file(&sealed, zeroed);
    let opened = LsmEngine::open("/db", options(&sim, true));
    if let Ok(e) = &opened {
        let lost: Vec<u32> = (0..20)
            .filter(|&i| e.get(&key(i)).unwrap().is_none())
            .collect();
        panic!("open succeeded; acknowledged, sealed keys lost without an error: {lost:?}");
    }
    assert!(is_corruption_of(&opened, &sealed), "{:?}", opened.err());
}

/// `Stats::disk_bytes` ("bytes of all the engine's files on disk") counts the live WAL at its
/// logical end, not its apparent size with the sparse preallocated zeros (at least 64 KiB
/// ahead of the end) that occupy no blocks. A clean close only adds bytes (a manifest record)
/// and cuts nothing that was written, so the closed directory reports no fewer bytes than the
/// open engine did (it once reported 65671 open against 263 closed).
#[test]
fn disk_bytes_count_the_live_wal_at_its_logical_end_not_its_sparse_tail() {
    let sim = SimStorage::new();
    let e = LsmEngine::open("/db", options(&sim, false)).unwrap();
    for i in 0..3 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    let open = e.stats().disk_bytes;
    drop(e);
    let closed = LsmEngine::open("/db", options(&sim, true))
        .unwrap()
        .stats()
        .disk_bytes;
    assert!(
        open <= closed,
        "disk_bytes {open} while open > {closed} after a clean close (which only adds bytes)"
    );
}

/// The same rule in a salvage open (here forced by a damaged `CURRENT`): only the highest-
/// numbered WAL may end in zeros, so a sealed WAL's zeroed records are reported as skipped
/// damage (the WAL is then moved aside) instead of being taken for its end, after which the
/// normal open would remove it as an orphan with the evidence of lost acknowledged writes.
#[test]
fn a_salvage_open_takes_zeros_for_the_end_only_of_the_newest_wal() {
    let (sim, sealed) = sealed_wal_then_headerless_newest();
    let mut bytes = sim.read_file(&sealed).unwrap();
    let from = record_offsets(&bytes)[16];
    bytes[from..].fill(0);
    sim.overwrite_file(&sealed, bytes);
    sim.overwrite_file(Path::new("/db/CURRENT"), b"MANIFEST-00x\n".to_vec());
    let e = LsmEngine::open(
        "/db",
        LsmOptions {
            salvage: true,
            ..options(&sim, false)
        },
    )
    .unwrap();
    let report = e.recovery_report().clone();
    assert!(report.rebuilt_after.is_some(), "no salvage ran");
    assert!(
        report.skipped.iter().any(|d| d.path == sealed),
        "the sealed WAL's zeroed records (keys 15..19) went unreported: {report:?}"
    );
}
