//! Fuzz bodies: plain functions that feed arbitrary bytes to the engine's decoders and must
//! never panic, whatever the bytes. The cargo-fuzz targets in `fuzz/` call them, and so does an
//! ordinary test that replays the checked-in corpus (`fuzz/corpus/<target>/`), so CI needs only
//! the stable toolchain. Not part of the engine's API.

use std::path::Path;
use std::sync::Arc;

use engine_api::{CommonOptions, Engine, IoClass, KeyRange, SimStorage, Storage};

use crate::hint::Hint;
use crate::manifest::Manifest;
use crate::record;
use crate::{BitcaskEngine, BitcaskOptions};

/// One data-file record (header and body), as recovery and reads decode it. The first four
/// bytes are the nonce of the file it is read from (little-endian), the record follows.
pub fn record(data: &[u8]) {
    let Some((nonce, data)) = data.split_first_chunk::<4>() else {
        return;
    };
    let nonce = u32::from_le_bytes(*nonce);
    let _ = record::Header::parse(data);
    if let Ok(r) = record::decode(data, nonce) {
        // A decoded record's parts lie inside the input.
        assert!(r.key.len() + r.value.len() <= data.len());
        let _ = (r.batch_end(), r.seal());
    }
}

/// A merge commit record; one that decodes must encode back to the same bytes.
pub fn merge_commit(data: &[u8]) {
    if let Some(m) = Manifest::decode(data) {
        assert_eq!(m.encode(), data, "a merge commit record did not round-trip");
    }
}

/// A hint file, checked against a data file of the id and length its header names (so the
/// fuzzer can get past that check), then walked entry by entry.
pub fn hint(data: &[u8]) {
    let field = |at: usize, n: usize| -> u64 {
        let mut b = [0u8; 8];
        if let Some(s) = data.get(at..at + n) {
            b[..n].copy_from_slice(s);
        }
        u64::from_le_bytes(b)
    };
    let id = u32::try_from(field(8, 4)).unwrap_or(0);
    let Some(file) = file_with(data) else {
        return;
    };
    if let Ok(Ok(hint)) = Hint::load(&*file, id, field(16, 8)) {
        let _ = hint.for_each(&mut |_| Ok(()));
    }
}

/// A whole data file, opened by the engine (read-only, and read-write for the torn-tail cut),
/// then read in full.
pub fn data_file(data: &[u8]) {
    for read_only in [true, false] {
        let sim = SimStorage::new();
        let dir = Path::new("/db");
        if sim.create_dir_all(dir).is_err() {
            return;
        }
        let Ok(file) = sim.create(&dir.join("0000000001.data"), IoClass::Other) else {
            return;
        };
        if file.append(data).is_err() {
            return;
        }
        drop(file);
        let options = BitcaskOptions {
            common: CommonOptions {
                storage: Arc::new(sim),
                read_only,
                ..CommonOptions::default()
            },
            ..BitcaskOptions::default()
        };
        if let Ok(engine) = BitcaskEngine::open(dir, options) {
            read_everything(&engine);
        }
    }
}

fn file_with(data: &[u8]) -> Option<Box<dyn engine_api::ReadableFile>> {
    let sim = SimStorage::new();
    let dir = Path::new("/f");
    sim.create_dir_all(dir).ok()?;
    let path = dir.join("x");
    let file = sim.create(&path, IoClass::Other).ok()?;
    file.append(data).ok()?;
    sim.open(&path, IoClass::Other).ok()
}

fn read_everything(engine: &dyn Engine) {
    let Ok(scan) = engine.scan(KeyRange::all()) else {
        return;
    };
    let keys: Vec<_> = scan.filter_map(Result::ok).map(|(k, _)| k).collect();
    for k in keys {
        let _ = engine.get(&k);
    }
}

/// The records of a data file, each as its own input for `record` (after the file's nonce):
/// how a corpus is built from real files.
pub fn split_records(data_file: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Some(nonce) = data_file.get(16..20) else {
        return out;
    };
    let nonce_value = u32::from_le_bytes(nonce.try_into().unwrap_or_default());
    let mut at = usize::try_from(crate::datafile::DATA_START).unwrap_or(0);
    while let Some(rest) = data_file.get(at..) {
        let Ok(header) = record::Header::parse(rest) else {
            break;
        };
        let len = header.record_len();
        match rest.get(..len) {
            Some(bytes) if record::decode(bytes, nonce_value).is_ok() => {
                out.push([nonce, bytes].concat());
            }
            _ => break,
        }
        at += len;
    }
    out
}
