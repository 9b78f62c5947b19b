//! The unsealed file a crash leaves: damage followed by synced records is corruption, never a
//! torn tail; a user value can never be taken for a seal (issue 11, items 1 and 6).

use std::collections::BTreeMap;
use std::sync::Arc;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{CrashMode, Engine, Error, SimStorage, SyncPolicy};

use crate::common::{contents, data_files, key, options, value};

fn open_on(sim: &SimStorage, salvage: bool) -> engine_api::Result<BitcaskEngine> {
    let mut o: BitcaskOptions = options(Arc::new(sim.clone()), SyncPolicy::Always);
    o.salvage = salvage;
    o.merge.auto = false;
    BitcaskEngine::open("/db", o)
}

/// The headline: a writer under `Always` acknowledges 391 puts and is killed (a crash
/// that keeps the page cache, as SIGKILL does); one byte in the middle of its unsealed data
/// file is damaged. The reopen must refuse with a corruption naming the file and an offset at
/// or before the damage, and a salvage open must keep every other acknowledged put and report
/// the damaged range.
#[test]
fn damage_in_the_middle_of_a_killed_writers_file_is_corruption_not_a_torn_tail() {
    let sim = SimStorage::new();
    let e = open_on(&sim, false).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..391u32 {
        e.put(&key(i), &value(i)).unwrap();
        model.insert(key(i), value(i));
    }
    // The middle of the records, not of the preallocated size.
    let logical = e.stats().files[0].bytes as usize;
    let image = sim.crash(CrashMode::KeepAll, 0);
    drop(e);
    let files = data_files(&image);
    assert_eq!(files.len(), 1, "one unsealed data file expected: {files:?}");
    let victim = files[0].clone();
    let mut bytes = image.read_file(&victim).unwrap();
    let at = logical / 2;
    bytes[at] ^= 0x20;
    image.overwrite_file(&victim, bytes);
    match open_on(&image, false) {
        Err(Error::Corruption { path, offset, .. }) => {
            assert_eq!(path, victim);
            assert!(
                offset <= at as u64,
                "offset {offset} is past the damage at {at}"
            );
        }
        Err(other) => panic!("expected a corruption error, got {other}"),
        Ok(e) => panic!(
            "the open accepted the damage and serves {} of 391 acknowledged puts (report {:?})",
            contents(&e).len(),
            e.recovery_report()
        ),
    }
    let e = open_on(&image, true).expect("a salvage open accepts the damage");
    let report = e.recovery_report().clone();
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    let skipped = &report.skipped[0];
    assert_eq!(skipped.path, victim);
    assert!(skipped.offset <= at as u64 && at as u64 <= skipped.offset + skipped.len);
    let got = contents(&e);
    for (k, v) in &got {
        assert_eq!(model.get(k), Some(v), "salvage served a wrong value");
    }
    assert_eq!(
        got.len() + 1,
        model.len(),
        "salvage lost more than the damaged record"
    );
}

/// A torn tail proper (bytes never synced, nothing after them) is still cut, after a damaged
/// middle file was told apart from it.
#[test]
fn a_garbled_unsynced_tail_is_still_cut_under_never() {
    let sim = SimStorage::new();
    let mut o: BitcaskOptions = options(Arc::new(sim.clone()), SyncPolicy::Never);
    o.merge.auto = false;
    let e = BitcaskEngine::open("/db", o.clone()).unwrap();
    for i in 0..50u32 {
        e.put(&key(i), &value(i)).unwrap();
    }
    e.sync().unwrap();
    for i in 50..100u32 {
        e.put(&key(i), &value(i)).unwrap();
    }
    for seed in 0..20 {
        let image = sim.crash(CrashMode::GarbleTail, seed);
        let mut o = o.clone();
        o.common.storage = Arc::new(image.clone());
        let e = BitcaskEngine::open("/db", o).unwrap();
        let got = contents(&e);
        assert!(
            (50..=100).contains(&got.len()),
            "seed {seed}: {} keys",
            got.len()
        );
        for i in 0..got.len() as u32 {
            assert_eq!(
                got.get(&key(i)),
                Some(&value(i)),
                "seed {seed}: a prefix is kept"
            );
        }
    }
    drop(e);
}

/// Length of a record's framing: grows the file by `framing + key + value` bytes.
fn framing(e: &BitcaskEngine) -> u64 {
    let before = active_len(e);
    e.put(b"probe", b"1234").unwrap();
    active_len(e) - before - 9
}

/// The active file's logical length (its size on disk runs ahead: it is preallocated).
fn active_len(e: &BitcaskEngine) -> u64 {
    e.stats().files.last().unwrap().bytes
}

/// Item 6: a put whose value ends in the bytes of a real seal record that names its own
/// position, written last before a crash, must not make the file look sealed. The forged seal
/// is taken from a scratch directory written the same way and closed cleanly, so the test
/// does not depend on the seal's layout: whatever the format, the last bytes of a sealed file
/// are its seal.
#[test]
fn a_value_ending_in_a_seal_is_not_taken_for_one() {
    // Target: a few puts, then the forging put, then a crash.
    let sim = SimStorage::new();
    let e = open_on(&sim, false).unwrap();
    let frame = framing(&e);
    for i in 0..5u32 {
        e.put(&key(i), &value(i)).unwrap();
    }
    let start = active_len(&e);
    // Scratch: the same puts, then a put ending exactly where the forged seal will start in
    // the target, then a clean close (which seals the file there).
    let scratch = SimStorage::new();
    let s = open_on(&scratch, false).unwrap();
    let scratch_file = data_files(&scratch)[0].clone();
    framing(&s);
    for i in 0..5u32 {
        s.put(&key(i), &value(i)).unwrap();
    }
    let filler_key = b"forged";
    let pad = 64u64;
    let seal_at = start + frame + filler_key.len() as u64 + pad;
    let filler_len = seal_at - start - frame - filler_key.len() as u64;
    s.put(filler_key, &vec![b'p'; filler_len as usize]).unwrap();
    assert_eq!(active_len(&s), seal_at);
    drop(s);
    let sealed = scratch.read_file(&scratch_file).unwrap();
    let seal = sealed[seal_at as usize..].to_vec();
    assert!(!seal.is_empty(), "the scratch file was sealed on close");
    // The forging put: its value is `pad` bytes, then the seal, so the seal's bytes sit at
    // `seal_at` in the target file, exactly where the scratch file's seal names itself.
    let mut forged = vec![b'p'; pad as usize];
    forged.extend_from_slice(&seal);
    e.put(filler_key, &forged).unwrap();
    assert_eq!(
        active_len(&e),
        seal_at + seal.len() as u64,
        "the forged seal ends the file"
    );
    let image = sim.crash(CrashMode::KeepAll, 0);
    drop(e);
    // Without its preallocated zeros (a crash may lose an unsynced size): the forged seal's
    // last byte is the file's last.
    let file = data_files(&image)[0].clone();
    let mut bytes = image.read_file(&file).unwrap();
    bytes.truncate((seal_at + seal.len() as u64) as usize);
    image.overwrite_file(&file, bytes);
    let e = open_on(&image, false).unwrap_or_else(|err| panic!("a healthy file refused: {err}"));
    assert_eq!(e.get(filler_key).unwrap().as_deref(), Some(&forged[..]));
    for i in 0..5u32 {
        assert_eq!(e.get(&key(i)).unwrap().as_deref(), Some(&value(i)[..]));
    }
}
