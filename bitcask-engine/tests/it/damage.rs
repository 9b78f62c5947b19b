//! Corrupt and truncated files: typed errors naming file and offset, never a panic or a wrong
//! value; undamaged keys still served; the opt-in salvage open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcask_engine::BitcaskEngine;
use engine_api::{CrashMode, Engine, Error, KeyRange, SimStorage, Storage, SyncPolicy};

use crate::common::{contents, open_tiny, tiny};

fn fill(sim: &SimStorage) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let e = open_tiny(sim, SyncPolicy::Never, false);
    let mut model = BTreeMap::new();
    for i in 0..120u32 {
        let k = format!("key{:03}", i % 60).into_bytes();
        let v = format!("value-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes();
        e.put(&k, &v).unwrap();
        model.insert(k, v);
    }
    model
}

/// Whether `value` was ever written to `key` by [`fill`].
fn written(key: &[u8], value: &[u8]) -> bool {
    (0..120u32).any(|i| {
        format!("key{:03}", i % 60).as_bytes() == key
            && format!("value-{i}-{}", "x".repeat((i % 50) as usize)).as_bytes() == value
    })
}

fn files(sim: &SimStorage, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = sim
        .all_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn remove_hints(sim: &SimStorage) {
    for h in files(sim, "hint") {
        sim.remove(&h).unwrap();
    }
}

/// Flips a byte in the middle of a sealed data file (inside a record, before the seal).
fn flip_middle(sim: &SimStorage, path: &Path) -> u64 {
    let mut bytes = sim.read_file(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    sim.overwrite_file(path, bytes);
    at as u64
}

fn open(sim: &SimStorage, salvage: bool) -> engine_api::Result<BitcaskEngine> {
    let mut o = tiny(Arc::new(sim.clone()), SyncPolicy::Never);
    o.salvage = salvage;
    o.merge.auto = false;
    BitcaskEngine::open("/db", o)
}

#[test]
fn damage_in_a_sealed_file_fails_the_open_with_file_and_offset() {
    let sim = SimStorage::new();
    fill(&sim);
    remove_hints(&sim);
    let victim = files(&sim, "data")[1].clone();
    let at = flip_middle(&sim, &victim);
    match open(&sim, false) {
        Err(Error::Corruption { path, offset, .. }) => {
            assert_eq!(path, victim);
            assert!(
                offset <= at && offset >= 8,
                "offset {offset} vs damage at {at}"
            );
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a damaged sealed file was accepted"),
    }
}

#[test]
fn damage_found_by_a_get_is_an_error_and_the_rest_is_served() {
    let sim = SimStorage::new();
    let model = fill(&sim);
    let victim = files(&sim, "data")[2].clone();
    flip_middle(&sim, &victim);
    let e = open(&sim, false).expect("the hint lets the open succeed");
    let mut bad = 0;
    for (k, v) in &model {
        match e.get(k) {
            Ok(got) => assert_eq!(got.as_deref(), Some(v.as_slice()), "wrong value"),
            Err(Error::Corruption { path, .. }) => {
                assert_eq!(path, victim);
                bad += 1;
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(bad <= 1, "one flipped byte damaged {bad} keys");
    let files_before = sim.all_files();
    assert!(
        matches!(e.compact(), Err(Error::Corruption { .. })),
        "merge copied a bad record"
    );
    assert_eq!(
        sim.all_files().len(),
        files_before.len(),
        "a failed merge left files"
    );
    assert!(e.scan(KeyRange::all()).is_ok());
}

#[test]
fn salvage_open_skips_reports_and_merges_the_damage_away() {
    let sim = SimStorage::new();
    let model = fill(&sim);
    remove_hints(&sim);
    let victim = files(&sim, "data")[1].clone();
    flip_middle(&sim, &victim);
    let e = open(&sim, true).unwrap();
    let report = e.recovery_report().clone();
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert_eq!(report.skipped[0].path, victim);
    let got = contents(&e);
    for (k, v) in &got {
        assert_eq!(model.get(k), Some(v), "salvage served a wrong value");
    }
    assert!(
        got.len() + 1 >= model.len(),
        "salvage lost more than the damaged record"
    );
    e.compact().unwrap();
    drop(e);
    let e = open(&sim, false).expect("after a salvage merge the directory is clean");
    assert_eq!(contents(&e), got);
}

#[test]
fn a_sealed_file_that_lost_its_end_is_corruption() {
    let sim = SimStorage::new();
    fill(&sim);
    remove_hints(&sim);
    let victim = files(&sim, "data")[1].clone();
    let bytes = sim.read_file(&victim).unwrap();
    sim.overwrite_file(&victim, bytes[..bytes.len() / 2].to_vec());
    assert!(matches!(open(&sim, false), Err(Error::Corruption { .. })));
    let e = open(&sim, true).expect("salvage accepts it");
    assert_eq!(e.recovery_report().skipped.len(), 1);
}

#[test]
fn torn_tail_of_the_active_file_is_cut() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim, SyncPolicy::Always, false);
    e.put(b"a", b"1").unwrap();
    e.put(b"b", b"2").unwrap();
    // The garbage goes at the logical end, over the preallocated zeros it would land on.
    let len = e.stats().files.last().unwrap().bytes as usize;
    let image = sim.crash(CrashMode::KeepAll, 0);
    drop(e);
    let active = files(&image, "data").pop().unwrap();
    let mut bytes = image.read_file(&active).unwrap();
    bytes.truncate(len);
    bytes.extend_from_slice(&[3, 0, 0, 0, 9, 9]);
    image.overwrite_file(&active, bytes);
    let e = open(&image, false).unwrap();
    let torn = &e.recovery_report().torn_tails;
    assert_eq!(torn.len(), 1);
    assert_eq!((torn[0].offset, torn[0].len), (len as u64, 6));
    assert_eq!(e.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    e.put(b"c", b"3").unwrap();
    drop(e);
    let e = open(&image, false).unwrap();
    assert!(e.recovery_report().torn_tails.is_empty());
    assert_eq!(contents(&e).len(), 3);
}

/// Random damage to random files: the open and every read either succeed with correct values
/// or fail with a typed error. Never a panic, never a wrong value.
#[test]
fn random_damage_gives_typed_errors_never_wrong_values() {
    for seed in 1..40u64 {
        let sim = SimStorage::new();
        let model = fill(&sim);
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let all = sim.all_files();
        let all: Vec<_> = all.iter().filter(|p| !p.ends_with("LOCK")).collect();
        let victim = all[(next() % all.len() as u64) as usize];
        let mut bytes = sim.read_file(victim).unwrap();
        if bytes.is_empty() {
            continue;
        }
        match next() % 3 {
            0 => bytes.truncate((next() % bytes.len() as u64) as usize),
            1 => {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] ^= (next() as u8) | 1;
            }
            _ => {
                let at = (next() % bytes.len() as u64) as usize;
                for b in bytes.iter_mut().skip(at).take(16) {
                    *b = next() as u8;
                }
            }
        }
        sim.overwrite_file(victim, bytes);
        for salvage in [false, true] {
            let Ok(e) = open(&sim, salvage) else { continue };
            // A cut newest file is indistinguishable from a torn tail: then older values of
            // the keys it held may come back, and the open reports the tail it cut.
            let exact = !salvage && e.recovery_report().torn_tails.is_empty();
            let ok = |k: &[u8], got: &[u8]| {
                if exact {
                    model.get(k).map(Vec::as_slice) == Some(got)
                } else {
                    written(k, got)
                }
            };
            for k in model.keys() {
                if let Ok(Some(got)) = e.get(k) {
                    assert!(ok(k, &got), "seed {seed}: wrong value for {k:?}");
                }
            }
            if let Ok(scan) = e.scan(KeyRange::all()) {
                for (k, v) in scan.flatten() {
                    assert!(ok(&k, &v), "seed {seed}: scan gave a wrong value for {k:?}");
                }
            }
        }
    }
}
