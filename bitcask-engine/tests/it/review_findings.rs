//! Crash-safety defects an independent review found after a round of fixes, one test each:
//! salvage of a sealed file that lost its seal, the bytes open's rewrite seals, the durability
//! of the hint a clean close writes, and file names this engine does not write.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcask_engine::BitcaskEngine;
use engine_api::{
    CrashMode, Engine, FileLock, IoClass, LockMode, ReadableFile, Result, SimStorage, Storage,
    SyncPolicy, WritableFile,
};

use crate::common::{contents, open_tiny, tiny};

fn with_ext(sim: &SimStorage, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = sim
        .all_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Opens `/db` on `storage` under `Never`, merges off, with files of `max_file_size`.
fn open_on(storage: Arc<dyn Storage>, max_file_size: u64, salvage: bool) -> Result<BitcaskEngine> {
    let mut o = tiny(storage, SyncPolicy::Never);
    o.max_file_size = max_file_size;
    o.salvage = salvage;
    o.merge.auto = false;
    BitcaskEngine::open("/db", o)
}

fn flip(sim: &SimStorage, path: &Path, offsets: &[usize]) {
    let mut bytes = sim.read_file(path).unwrap();
    for &at in offsets {
        bytes[at] ^= 0x20;
    }
    sim.overwrite_file(path, bytes);
}

/// A sealed, non-newest file written under `Never` (every record says synced = 24, so no
/// later record vouches for the damaged bytes) is damaged in one record and in its seal.
/// A salvage open must skip the damaged record only, and must not shrink the file.
#[test]
fn salvage_keeps_every_intact_record_of_a_sealed_file_that_lost_its_seal() {
    let sim = SimStorage::new();
    {
        let e = open_tiny(&sim, SyncPolicy::Never, false);
        for i in 0..60u32 {
            let v = format!("value-{i}-{}", "x".repeat(20));
            e.put(format!("key{i:03}").as_bytes(), v.as_bytes())
                .unwrap();
        }
    }
    for h in with_ext(&sim, "hint") {
        sim.remove(&h).unwrap();
    }
    let victim = with_ext(&sim, "data")[1].clone();
    let before = sim.read_file(&victim).unwrap().len();
    flip(&sim, &victim, &[60, before - 3]);
    let e = open_on(Arc::new(sim.clone()), 1024, true).unwrap();
    assert!(
        !e.recovery_report().skipped.is_empty(),
        "damage not reported"
    );
    let served = contents(&e);
    let after = sim.read_file(&victim).unwrap().len();
    assert!(
        served.len() >= 59,
        "salvage dropped {} intact records ({before} -> {after} bytes)",
        59 - served.len()
    );
    assert!(
        after >= before,
        "salvage shrank the file: {before} -> {after} bytes"
    );
    // A salvage merge copies the records away; the directory is then clean.
    e.compact().unwrap();
    drop(e);
    let e = open_on(Arc::new(sim.clone()), 1024, false).expect("clean after a salvage merge");
    assert_eq!(contents(&e), served);
}

/// A storage that, when open's rewrite creates `<id>.data.tmp`, first zeroes 8 bytes of
/// `<id>.data` at `victim_off`: as if pages left clean by a failed writeback were evicted
/// between the scan and the copy and read back from a disk that never got them.
#[derive(Debug)]
struct EvictOnRewrite {
    sim: SimStorage,
    victim_off: usize,
}

impl EvictOnRewrite {
    fn evict(&self, tmp: &Path) {
        let name = tmp.to_string_lossy();
        let Some(orig) = name.strip_suffix(".tmp").filter(|o| o.ends_with(".data")) else {
            return;
        };
        let orig = PathBuf::from(orig);
        if let Some(mut b) = self.sim.read_file(&orig)
            && b.len() > self.victim_off + 8
        {
            b[self.victim_off..self.victim_off + 8].fill(0);
            self.sim.overwrite_file(&orig, b);
        }
    }
}

impl Storage for EvictOnRewrite {
    fn create_dir_all(&self, d: &Path) -> Result<()> {
        self.sim.create_dir_all(d)
    }
    fn create(&self, p: &Path, c: IoClass) -> Result<Box<dyn WritableFile>> {
        self.evict(p);
        self.sim.create(p, c)
    }
    fn open_append(&self, p: &Path, c: IoClass) -> Result<Box<dyn WritableFile>> {
        self.sim.open_append(p, c)
    }
    fn open(&self, p: &Path, c: IoClass) -> Result<Box<dyn ReadableFile>> {
        self.sim.open(p, c)
    }
    fn rename(&self, a: &Path, b: &Path) -> Result<()> {
        self.sim.rename(a, b)
    }
    fn remove(&self, p: &Path) -> Result<()> {
        self.sim.remove(p)
    }
    fn list(&self, d: &Path) -> Result<Vec<String>> {
        self.sim.list(d)
    }
    fn exists(&self, p: &Path) -> Result<bool> {
        self.sim.exists(p)
    }
    fn file_len(&self, p: &Path) -> Result<u64> {
        self.sim.file_len(p)
    }
    fn sync_dir(&self, d: &Path) -> Result<()> {
        self.sim.sync_dir(d)
    }
    fn lock(&self, p: &Path, m: LockMode) -> Result<Box<dyn FileLock>> {
        self.sim.lock(p, m)
    }
}

/// Open's rewrite of the previous run's active file must seal exactly the bytes its scan
/// verified, not a second read of the old file that may differ.
#[test]
fn open_rewrite_seals_only_the_bytes_its_scan_verified() {
    let sim = SimStorage::new();
    {
        let e = open_on(Arc::new(sim.clone()), 1 << 20, false).unwrap();
        for i in 0..20u32 {
            e.put(format!("key{i:03}").as_bytes(), b"some value here")
                .unwrap();
        }
        std::mem::forget(e); // SIGKILL: no clean close
    }
    let killed = sim.crash(CrashMode::KeepAll, 1);
    let evicting = EvictOnRewrite {
        sim: killed.clone(),
        victim_off: 24 + 5 * 50,
    };
    let e = open_on(Arc::new(evicting), 1 << 20, false).unwrap();
    let failing: Vec<_> = (0..20u32)
        .filter_map(|i| e.get(format!("key{i:03}").as_bytes()).err())
        .collect();
    drop(e);
    let again = open_on(Arc::new(killed), 1 << 20, false);
    assert!(
        failing.is_empty() && again.is_ok(),
        "the rewrite sealed unverified bytes: gets {failing:?}, reopen {:?}",
        again.err()
    );
}

/// After a clean close and a power loss, the last file must still have its hint (its name
/// synced), so that a cut in that sealed file is corruption, not a torn tail.
#[test]
fn a_clean_close_makes_its_hint_name_durable() {
    let sim = SimStorage::new();
    {
        let mut o = tiny(Arc::new(sim.clone()), SyncPolicy::Always);
        o.max_file_size = 1 << 20;
        o.merge.auto = false;
        let e = BitcaskEngine::open("/db", o).unwrap();
        for i in 0..20u32 {
            e.put(format!("key{i:03}").as_bytes(), b"some value here")
                .unwrap();
        }
    }
    let after = sim.crash(CrashMode::DropUnsynced, 1);
    assert_eq!(
        with_ext(&after, "hint").len(),
        1,
        "the hint's name was lost"
    );
    let f = with_ext(&after, "data")[0].clone();
    let b = after.read_file(&f).unwrap();
    after.overwrite_file(&f, b[..24 + 10 * 50 + 7].to_vec());
    let mut o = tiny(Arc::new(after.clone()), SyncPolicy::Always);
    o.max_file_size = 1 << 20;
    o.merge.auto = false;
    if let Ok(e) = BitcaskEngine::open("/db", o) {
        panic!(
            "a sealed file that lost its end passed for a torn tail: {:?}",
            e.recovery_report().torn_tails
        );
    }
}

/// A file whose name looks like ours but is not one this engine writes (ids are always ten
/// digits) is foreign: open neither loads nor removes it, and does not fail over it.
#[test]
fn open_leaves_non_canonical_names_alone() {
    for name in [
        "7.data.tmp",
        "7.merging",
        "7.data",
        "7.hint",
        "MERGE-7",
        "MERGE-7.tmp",
    ] {
        let sim = SimStorage::new();
        {
            let e = open_tiny(&sim, SyncPolicy::Always, false);
            e.put(b"a", b"1").unwrap();
        }
        let stray = Path::new("/db").join(name);
        let f = sim.create(&stray, IoClass::Other).unwrap();
        f.append(b"not ours").unwrap();
        drop(f);
        let e = open_on(Arc::new(sim.clone()), 1024, false)
            .unwrap_or_else(|err| panic!("open with a stray {name}: {err}"));
        assert_eq!(e.get(b"a").unwrap().as_deref(), Some(&b"1"[..]), "{name}");
        drop(e);
        assert!(sim.exists(&stray).unwrap(), "open removed the stray {name}");
    }
}

/// A record as `docs/formats/bitcask-record.md` lays it out, with a valid CRC for `nonce`.
fn craft_record(nonce: u32, seq: u64, kind: u8, value: &[u8], synced: u32) -> Vec<u8> {
    let key: &[u8] = if kind == 6 { b"" } else { b"k" };
    let mut r = vec![0u8; 4];
    r.extend_from_slice(&seq.to_le_bytes());
    r.push(kind);
    r.extend_from_slice(&u16::try_from(key.len()).unwrap().to_le_bytes());
    r.extend_from_slice(&u32::try_from(value.len()).unwrap().to_le_bytes());
    r.extend_from_slice(&synced.to_le_bytes());
    r.extend_from_slice(key);
    r.extend_from_slice(value);
    let mut h = crc32fast::Hasher::new_with_initial(nonce);
    h.update(&r[4..]);
    let crc = h.finalize();
    r[..4].copy_from_slice(&crc.to_le_bytes());
    r
}

/// A sealed file whose record (and seal) claim sequence number `u64::MAX`, with valid CRCs:
/// open must report corruption, never wrap the next sequence number (or panic).
#[test]
fn a_sequence_number_at_the_top_of_u64_is_corruption() {
    let sim = SimStorage::new();
    {
        let e = open_tiny(&sim, SyncPolicy::Always, false);
        e.put(b"a", b"1").unwrap();
    }
    for h in with_ext(&sim, "hint") {
        sim.remove(&h).unwrap();
    }
    let f = with_ext(&sim, "data")[0].clone();
    let old = sim.read_file(&f).unwrap();
    let nonce = u32::from_le_bytes(old[16..20].try_into().unwrap());
    let mut bytes = old[..24].to_vec();
    bytes.extend(craft_record(nonce, u64::MAX, 1, b"v", 24));
    let at = bytes.len() as u64;
    let mut seal = Vec::new();
    for field in [1, u64::MAX, u64::MAX, at] {
        seal.extend_from_slice(&field.to_le_bytes());
    }
    bytes.extend(craft_record(
        nonce,
        u64::MAX,
        6,
        &seal,
        u32::try_from(at).unwrap(),
    ));
    sim.overwrite_file(&f, bytes);
    match open_on(Arc::new(sim.clone()), 1024, false) {
        Err(engine_api::Error::Corruption { .. }) => {}
        Err(other) => panic!("expected a corruption error, got {other}"),
        Ok(e) => panic!(
            "opened a file claiming sequence number u64::MAX: {:?}",
            e.get(b"k")
        ),
    }
}

/// A close that removes an empty active file leaves the file below it the newest: its hint
/// must be there, durably, even if the worker failed to write it.
#[test]
fn a_close_removing_an_empty_active_file_keeps_the_newest_hint_durable() {
    let sim = SimStorage::new();
    {
        let e = open_on(Arc::new(sim.clone()), 1 << 20, false).unwrap();
        for i in 0..20u32 {
            e.put(format!("key{i:03}").as_bytes(), b"some value here")
                .unwrap();
        }
        std::mem::forget(e); // SIGKILL: no clean close
    }
    let killed = sim.crash(CrashMode::KeepAll, 1);
    // Creates at this open: the rewrite's copy, the new active file, then (worker) the hint
    // of the rewritten file, which fails.
    killed.inject_fault(engine_api::FaultOp::Create, 2, false);
    drop(open_on(Arc::new(killed.clone()), 1 << 20, false).unwrap());
    killed.clear_faults();
    let after = killed.crash(CrashMode::DropUnsynced, 1);
    let f = with_ext(&after, "data")[0].clone();
    let b = after.read_file(&f).unwrap();
    after.overwrite_file(&f, b[..24 + 10 * 50 + 7].to_vec());
    if let Ok(e) = open_on(Arc::new(after), 1 << 20, false) {
        panic!(
            "a sealed file that lost its end passed for a torn tail: {:?}",
            e.recovery_report().torn_tails
        );
    }
}
