//! Every engine the harness runs, peers included, behind the same `Engine` contract: what the
//! comparison assumes of each (one consistent iterator per scan, `compact` flushes first).
//! Peers are checked when their cargo feature is on (`--features fjall,redb`).

use std::sync::Arc;

use bench_harness::engines::{self, EngineConfig, EngineEntry, Tuning};
use engine_api::{Engine, KeyRange, SyncPolicy};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn key(i: u32) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

fn open(entry: &EngineEntry, dir: &std::path::Path) -> engine_api::Result<Arc<dyn Engine>> {
    (entry.open)(dir, &EngineConfig::new(SyncPolicy::Never))
}

/// Writes made in the middle of a scan, ahead of its cursor, are not seen by it: the scan
/// reads one view from one iterator. An adapter that reopens an iterator per chunk sees them.
fn scan_is_one_view(entry: &EngineEntry) -> TestResult {
    let dir = tempfile::tempdir()?;
    let engine = open(entry, dir.path())?;
    for i in 0..300 {
        engine.put(&key(i), b"old")?;
    }
    let mut scan = engine.scan(KeyRange::all())?;
    let mut seen = Vec::new();
    for _ in 0..20 {
        let (k, _) = scan.next().ok_or("scan ended early")??;
        seen.push(k.to_vec());
    }
    engine.put(&key(250), b"new")?;
    engine.put(b"key00100x", b"inserted")?;
    engine.delete(&key(280))?;
    for item in scan {
        let (k, v) = item?;
        assert_ne!(&v[..], b"new", "{}: scan saw a later overwrite", entry.name);
        seen.push(k.to_vec());
    }
    let expected: Vec<Vec<u8>> = (0..300).map(key).collect();
    assert_eq!(
        seen, expected,
        "{}: the scan did not read one view",
        entry.name
    );
    Ok(())
}

/// `compact` means "flush, then compact everything": after it, a freshly written memtable's
/// keys sit in tables on disk.
fn compact_flushes_first(entry: &EngineEntry) -> TestResult {
    let dir = tempfile::tempdir()?;
    let engine = open(entry, dir.path())?;
    for i in 0..2_000 {
        engine.put(&key(i), b"value")?;
    }
    engine.compact()?;
    let stats = engine.stats();
    let tables: u64 = match entry.name {
        "lsm" => stats.levels.iter().map(|l| l.files).sum(),
        _ => stats.file_count,
    };
    assert!(
        tables >= 1,
        "{}: compact left the data in memory",
        entry.name
    );
    assert_eq!(engine.get(&key(1_999))?.as_deref(), Some(&b"value"[..]));
    Ok(())
}

fn every_engine(check: fn(&EngineEntry) -> TestResult) -> TestResult {
    for entry in engines::all() {
        check(&entry)?;
    }
    Ok(())
}

#[test]
fn every_engine_scans_one_consistent_view() -> TestResult {
    every_engine(scan_is_one_view)
}

#[test]
fn every_lsm_flushes_before_compacting() -> TestResult {
    for name in ["lsm", "fjall", "rocksdb"] {
        if let Ok(entry) = engines::find(name) {
            compact_flushes_first(&entry)?;
        }
    }
    Ok(())
}

/// The version of `package` in the workspace's lock file: what the build really used.
fn locked_version(package: &str) -> Option<String> {
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let text = std::fs::read_to_string(lock).ok()?;
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != format!("name = \"{package}\""));
    let version = lines.nth(1)?.trim().strip_prefix("version = \"")?;
    Some(version.trim_end_matches('"').to_string())
}

#[test]
fn peers_name_their_built_version() {
    for entry in engines::all().iter().filter(|e| !e.seam_accounting) {
        let settings = (entry.settings)(&EngineConfig::new(SyncPolicy::Never));
        let version = settings.iter().find(|(k, _)| k == "version");
        let (_, version) = version.unwrap_or_else(|| panic!("{} names no version", entry.name));
        let locked = locked_version(entry.name).expect("the peer is in Cargo.lock");
        assert!(
            version.contains(&locked),
            "{}: version '{version}' is not the built {locked}",
            entry.name
        );
    }
}

/// `--defaults`: every engine opens with its own default options, and a peer's settings say so
/// instead of listing our LSM's shape.
fn opens_at_its_own_defaults(entry: &EngineEntry) -> TestResult {
    let mut config = EngineConfig::new(SyncPolicy::Never);
    config.tuning = Tuning::Defaults;
    let dir = tempfile::tempdir()?;
    let engine = (entry.open)(dir.path(), &config)?;
    engine.put(&key(7), b"value")?;
    assert_eq!(engine.get(&key(7))?.as_deref(), Some(&b"value"[..]));
    let settings = (entry.settings)(&config);
    let named = |name: &str| settings.iter().any(|(k, _)| k == name);
    for shaped in ["write_buffer_size", "max_memtable_size", "cache_size"] {
        let copied = named(shaped)
            && settings
                .iter()
                .any(|(k, v)| k == shaped && v != "redb's default");
        assert!(!copied, "{}: {shaped} copied under --defaults", entry.name);
    }
    if !entry.seam_accounting && entry.name != "redb" {
        assert!(named("options"), "{}: {settings:?}", entry.name);
    }
    Ok(())
}

#[test]
fn every_engine_opens_at_its_own_defaults() -> TestResult {
    every_engine(opens_at_its_own_defaults)
}
