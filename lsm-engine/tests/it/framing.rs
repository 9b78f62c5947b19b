//! WAL and manifest record framing against records a user forges inside a value: every record
//! is seeded with its file's random nonce, so a record framed by someone who does not know the
//! nonce never verifies, whether a reader resynchronises after damage (salvage), or looks past
//! a torn tail for a record that vouches for it. Files of the old format version are a typed
//! error naming the file. (Found by a reviewer's probes.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine_api::{CrashMode, Engine, Error, SimStorage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::common::{default_options, files_with};

fn opts(sim: &SimStorage, salvage: bool) -> LsmOptions {
    LsmOptions {
        salvage,
        auto_compaction: false,
        ..default_options(Arc::new(sim.clone()), SyncPolicy::Always)
    }
}

fn wal(sim: &SimStorage) -> PathBuf {
    files_with(sim, ".log").pop().unwrap()
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

/// A record in the published framing with a plain (unseeded) CRC-32: what a user who knows the
/// format but not a file's nonce can write.
fn plain_record(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = u32::try_from(payload.len()).unwrap().to_le_bytes().to_vec();
    body.push(kind);
    body.extend_from_slice(payload);
    [crc32fast::hash(&body).to_le_bytes().to_vec(), body].concat()
}

/// A forged WAL batch: `victim` set to `evil` at sequence number 1,000,000, claiming the file
/// was synced through 1 GiB when it was written.
fn forged() -> Vec<u8> {
    let mut payload = 1_000_000u64.to_le_bytes().to_vec();
    payload.extend_from_slice(&(1u64 << 30).to_le_bytes());
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(&[1, 6]);
    payload.extend_from_slice(b"victim");
    payload.push(4);
    payload.extend_from_slice(b"evil");
    plain_record(1, &payload)
}

/// A value holding `forged()` between padding.
fn attacking_value(tail_pad: usize) -> Vec<u8> {
    [b"PADPADPAD".to_vec(), forged(), vec![b'P'; tail_pad]].concat()
}

/// Damage to the record around a value holding a forged record: salvage skips the damaged
/// record and must not resume at the forged one inside it.
#[test]
fn salvage_never_applies_a_record_forged_inside_a_value() {
    let sim = SimStorage::new();
    let e = LsmEngine::open("/db", opts(&sim, false)).unwrap();
    e.put(b"victim", b"good").unwrap();
    e.put(b"attacker-key", &attacking_value(9)).unwrap();
    e.put(b"later", b"x").unwrap();
    drop(e);
    let path = wal(&sim);
    let mut bytes = sim.read_file(&path).unwrap();
    let at = find(&bytes, b"attacker-key");
    bytes[at] ^= 0xff; // damage to the outer record only
    assert!(sim.overwrite_file(&path, bytes));
    let e = LsmEngine::open("/db", opts(&sim, true)).unwrap();
    assert_eq!(
        e.get(b"victim").unwrap().as_deref(),
        Some(&b"good"[..]),
        "salvage applied the forged record"
    );
    assert_eq!(e.get(b"later").unwrap().as_deref(), Some(&b"x"[..]));
}

/// A crash tears the last record just past a forged record inside its value; the forged
/// record's `synced` field must not make the torn tail look like damage to durable bytes.
#[test]
fn a_torn_tail_behind_a_forged_record_is_still_a_torn_tail() {
    let sim = SimStorage::new();
    let e = LsmEngine::open("/db", opts(&sim, false)).unwrap();
    e.put(b"victim", b"good").unwrap();
    e.put(b"attacker-key", &attacking_value(64)).unwrap();
    let image = sim.crash(CrashMode::KeepAll, 1);
    drop(e);
    let path = wal(&image);
    let mut bytes = image.read_file(&path).unwrap();
    let end = find(&bytes, &forged()) + forged().len();
    bytes.truncate(end + 3); // a torn write: a prefix of the last record
    assert!(image.overwrite_file(&path, bytes));
    match LsmEngine::open("/db", opts(&image, false)) {
        Ok(e) => {
            assert_eq!(e.get(b"victim").unwrap().as_deref(), Some(&b"good"[..]));
            assert_eq!(e.get(b"attacker-key").unwrap(), None, "a torn write served");
        }
        Err(err) => panic!("a torn tail refused: {err}"),
    }
}

/// `file` of a cleanly closed engine replaced by a version-1 file: one record with a plain CRC-32.
fn with_v1_file(file: impl Fn(&SimStorage) -> PathBuf, v1: &[u8]) -> (SimStorage, PathBuf) {
    let sim = SimStorage::new();
    let e = LsmEngine::open("/db", opts(&sim, false)).unwrap();
    e.put(b"k", b"v").unwrap();
    drop(e);
    let path = file(&sim);
    assert!(sim.overwrite_file(&path, v1.to_vec()));
    (sim, path)
}

/// Both opens (the salvage open repairs only corruption) refuse the file by name.
fn assert_other_version(sim: &SimStorage, path: &Path) {
    for salvage in [false, true] {
        match LsmEngine::open("/db", opts(sim, salvage)) {
            Err(Error::InvalidArgument(msg)) => assert!(
                msg.contains(&path.display().to_string()) && msg.contains("format version 1"),
                "{msg}"
            ),
            Err(e) => panic!("wrong error for a version-1 file: {e}"),
            Ok(_) => panic!("a version-1 file was opened"),
        }
    }
}

#[test]
fn a_version_1_wal_is_a_typed_error_naming_it() {
    let header = [0u64.to_le_bytes(), 0u64.to_le_bytes()].concat();
    let (sim, path) = with_v1_file(wal, &plain_record(4, &header));
    assert_other_version(&sim, &path);
}

#[test]
fn a_version_1_manifest_is_a_typed_error_naming_it() {
    let current = |sim: &SimStorage| {
        let name = sim.read_file(Path::new("/db/CURRENT")).unwrap();
        Path::new("/db").join(String::from_utf8(name).unwrap().trim_end())
    };
    let (sim, path) = with_v1_file(current, &plain_record(2, &[]));
    assert_other_version(&sim, &path);
}

/// Keys `key000000..` and, last in key order, one holding a forged compaction-log record.
fn forged_log_record() -> Vec<u8> {
    plain_record(3, b"\x02forged-output")
}

fn attacking_key() -> Vec<u8> {
    [b"zz".to_vec(), forged_log_record(), vec![b'P'; 48]].concat()
}

/// A crash image taken while a compaction's log holds the record of the output that ends at
/// the attacking key (that record carries the key as the output's largest).
fn image_with_attacking_log_record() -> (SimStorage, PathBuf) {
    for k in 1..200 {
        let sim = SimStorage::new();
        let o = LsmOptions {
            auto_compaction: false,
            ..crate::common::tiny_options(Arc::new(sim.clone()), SyncPolicy::Always)
        };
        let e = LsmEngine::open("/db", o).unwrap();
        for i in 0..120 {
            e.put(&crate::common::key(i), b"value").unwrap();
        }
        e.put(&attacking_key(), b"v").unwrap();
        e.flush().unwrap();
        sim.freeze_after(&[engine_api::FaultOp::Sync], k);
        let _ = e.compact();
        let image = sim.crash(CrashMode::KeepAll, 1);
        drop(e);
        let logs = files_with(&image, ".clog");
        let hit = logs.into_iter().find(|p| {
            let bytes = image.read_file(p).unwrap();
            bytes
                .windows(forged_log_record().len())
                .any(|w| w == forged_log_record())
        });
        if let Some(path) = hit {
            return (image, path);
        }
    }
    panic!("no crash point left a compaction log holding the attacking key");
}

/// A crash tears a compaction log's last record just past a record forged inside its key: the
/// torn tail must still read as torn (the job resumes), not as damage to durable records.
#[test]
fn a_torn_compaction_log_behind_a_forged_record_is_still_a_torn_tail() {
    let (image, path) = image_with_attacking_log_record();
    let mut bytes = image.read_file(&path).unwrap();
    let forged = forged_log_record();
    let end = find(&bytes, &forged) + forged.len();
    bytes.truncate(end + 3);
    assert!(image.overwrite_file(&path, bytes));
    let o = LsmOptions {
        auto_compaction: false,
        ..crate::common::tiny_options(Arc::new(image.clone()), SyncPolicy::Always)
    };
    match LsmEngine::open("/db", o) {
        Ok(e) => {
            let voided = e.compaction_manager().voided_logs();
            assert!(voided.is_empty(), "a torn log taken for damage: {voided:?}");
            assert_eq!(
                e.get(&crate::common::key(7)).unwrap().as_deref(),
                Some(&b"value"[..])
            );
            assert_eq!(e.get(&attacking_key()).unwrap().as_deref(), Some(&b"v"[..]));
        }
        Err(err) => panic!("a torn compaction-log tail refused: {err}"),
    }
}
