//! What open may remove or reuse (issue 11): a committed merge is rolled forward only when
//! every output it names is there with its recorded length (item 7); open removes only the
//! temporary files it writes; file ids never wrap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{CommonOptions, Engine, Error, FaultOp, IoClass, SimStorage, Storage, SyncPolicy};

use crate::common::{open_tiny, tiny};

fn names(sim: &SimStorage, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = sim
        .all_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    v
}

/// A directory whose merge committed and whose roll-forward failed right after the commit:
/// `MERGE-<id>`, the `.merging` outputs and the inputs are all there.
fn committed_not_rolled_forward() -> SimStorage {
    let sim = SimStorage::new();
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    for i in 0..80u32 {
        let k = format!("key{:02}", i % 20);
        e.put(
            k.as_bytes(),
            format!("value-{i}-{}", "x".repeat(40)).as_bytes(),
        )
        .unwrap();
    }
    // Renames during compact(): the rotation's new file, the commit record, then the outputs.
    sim.inject_fault(FaultOp::Rename, 2, true);
    assert!(e.compact().is_err(), "the roll-forward was meant to fail");
    drop(e);
    sim.clear_faults();
    assert!(!names(&sim, ".merging").is_empty(), "no merge output left");
    assert_eq!(
        sim.all_files()
            .iter()
            .filter(|p| p.to_string_lossy().contains("MERGE-"))
            .count(),
        1,
        "no commit record left"
    );
    sim
}

fn open_plain(sim: &SimStorage) -> engine_api::Result<BitcaskEngine> {
    let mut o = tiny(Arc::new(sim.clone()), SyncPolicy::Never);
    o.merge.auto = false;
    BitcaskEngine::open("/db", o)
}

fn expect_corruption_and_nothing_removed(sim: &SimStorage, what: &str) {
    let before = sim.all_files();
    match open_plain(sim) {
        Err(Error::Corruption { .. }) => {}
        Err(other) => panic!("{what}: expected a corruption error, got {other}"),
        Ok(_) => panic!("{what}: the open rolled the merge forward"),
    }
    let mut after = sim.all_files();
    after.retain(|p| !p.ends_with("LOCK"));
    let mut before = before;
    before.retain(|p| !p.ends_with("LOCK"));
    assert_eq!(after, before, "{what}: the failed open removed files");
}

#[test]
fn roll_forward_refuses_a_missing_output() {
    let sim = committed_not_rolled_forward();
    let gone = names(&sim, ".merging")[0].clone();
    sim.remove(&gone).unwrap();
    sim.sync_dir(Path::new("/db")).unwrap();
    expect_corruption_and_nothing_removed(&sim, "missing output");
}

#[test]
fn roll_forward_refuses_an_output_of_the_wrong_length() {
    let sim = committed_not_rolled_forward();
    let cut = names(&sim, ".merging")[0].clone();
    let bytes = sim.read_file(&cut).unwrap();
    sim.overwrite_file(&cut, bytes[..bytes.len() - 10].to_vec());
    expect_corruption_and_nothing_removed(&sim, "short output");
}

#[test]
fn roll_forward_of_intact_outputs_still_works() {
    let sim = committed_not_rolled_forward();
    let e = open_plain(&sim).unwrap();
    assert_eq!(e.recovery_report().merges_rolled_forward, 1);
    assert_eq!(crate::common::contents(&e).len(), 20);
}

/// Open removes the temporary files it writes (`<id>.data.tmp`, `MERGE-<id>.tmp`) and
/// nothing else that ends in `.tmp`.
#[test]
fn open_removes_only_its_own_temporary_files() {
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new("/db")).unwrap();
    let theirs = Path::new("/db/notes.tmp");
    let ours = Path::new("/db/0000000009.data.tmp");
    for p in [theirs, ours] {
        let f = sim.create(p, IoClass::Other).unwrap();
        f.append(b"x").unwrap();
        f.sync().unwrap();
    }
    sim.sync_dir(Path::new("/db")).unwrap();
    drop(open_plain(&sim).unwrap());
    assert!(
        sim.exists(theirs).unwrap(),
        "open removed a file it did not write"
    );
    assert!(!sim.exists(ours).unwrap(), "open kept its own leftover");
}

/// File ids are u32s; when the next id would pass `u32::MAX` the engine must refuse to create
/// a file (a typed error), never wrap around and reuse the id of a live file.
#[test]
fn file_ids_never_wrap() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    e.put(b"a", b"1").unwrap();
    drop(e);
    // A stray hint with the second-highest id makes the next id the highest.
    let stray = Path::new("/db/4294967294.hint");
    let f = sim.create(stray, IoClass::Other).unwrap();
    f.append(b"junk").unwrap();
    f.sync().unwrap();
    sim.sync_dir(Path::new("/db")).unwrap();
    if let Ok(e) = open_plain(&sim) {
        for i in 0..60u32 {
            // Rotations use up the last ids; puts may fail once there is none left.
            let _ = e.put(format!("k{i}").as_bytes(), &[1u8; 200]);
        }
    }
    let o = BitcaskOptions {
        common: CommonOptions {
            read_only: true,
            storage: Arc::new(sim.clone()),
            ..CommonOptions::default()
        },
        ..BitcaskOptions::default()
    };
    let e = BitcaskEngine::open("/db", o).unwrap();
    assert_eq!(
        e.get(b"a").unwrap().as_deref(),
        Some(&b"1"[..]),
        "a wrapped file id replaced a live data file"
    );
}
