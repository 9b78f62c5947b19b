//! SimStorage: what a crash keeps and drops, and injected faults reaching the caller.

use std::path::{Path, PathBuf};

use engine_api::{CrashMode, Error, FaultOp, IoClass, LockMode, SimStorage, Storage};

fn dir() -> PathBuf {
    PathBuf::from("/d")
}

fn setup() -> SimStorage {
    let sim = SimStorage::new();
    sim.create_dir_all(&dir()).unwrap();
    sim
}

fn read(sim: &SimStorage, path: &Path) -> Option<Vec<u8>> {
    let file = sim.open(path, IoClass::Recovery).ok()?;
    Some(file.read_all().unwrap())
}

/// A file whose data and name are synced, followed by an unsynced tail.
fn synced_file_with_tail(sim: &SimStorage) -> PathBuf {
    let path = dir().join("f");
    let f = sim.create(&path, IoClass::Log).unwrap();
    f.append(b"durable|").unwrap();
    f.sync().unwrap();
    sim.sync_dir(&dir()).unwrap();
    f.append(b"unsynced-tail").unwrap();
    path
}

#[test]
fn crash_drops_unsynced_bytes() {
    let sim = setup();
    let path = synced_file_with_tail(&sim);
    assert_eq!(
        read(&sim, &path).unwrap(),
        b"durable|unsynced-tail",
        "live view"
    );
    let after = sim.crash(CrashMode::DropUnsynced, 1);
    assert_eq!(read(&after, &path).unwrap(), b"durable|");
}

#[test]
fn crash_keeps_a_prefix_of_the_unsynced_tail() {
    let mut lengths = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let sim = setup();
        let path = synced_file_with_tail(&sim);
        let data = read(&sim.crash(CrashMode::KeepPrefix, seed), &path).unwrap();
        assert!(
            b"durable|unsynced-tail".starts_with(&data),
            "not a prefix: {data:?}"
        );
        assert!(data.starts_with(b"durable|"), "synced data lost");
        lengths.insert(data.len());
    }
    assert!(lengths.len() > 3, "prefixes do not vary: {lengths:?}");
}

#[test]
fn crash_can_garble_the_unsynced_tail_only() {
    for seed in 0..32 {
        let sim = setup();
        let path = synced_file_with_tail(&sim);
        let data = read(&sim.crash(CrashMode::GarbleTail, seed), &path).unwrap();
        assert!(data.starts_with(b"durable|"), "synced bytes garbled");
        let tail = &data[8..];
        assert!(!tail.is_empty(), "garble mode keeps some tail");
        assert_ne!(
            tail,
            &b"unsynced-tail"[..tail.len()],
            "tail was not garbled"
        );
    }
}

#[test]
fn crash_keep_all_is_a_process_crash() {
    let sim = setup();
    let path = synced_file_with_tail(&sim);
    let after = sim.crash(CrashMode::KeepAll, 0);
    assert_eq!(read(&after, &path).unwrap(), b"durable|unsynced-tail");
}

#[test]
fn crash_undoes_an_unsynced_rename() {
    let sim = setup();
    let (a, b) = (dir().join("a"), dir().join("b"));
    let f = sim.create(&a, IoClass::Manifest).unwrap();
    f.append(b"A").unwrap();
    f.sync().unwrap();
    sim.sync_dir(&dir()).unwrap();
    sim.rename(&a, &b).unwrap();
    assert!(sim.exists(&b).unwrap() && !sim.exists(&a).unwrap());
    for mode in [CrashMode::DropUnsynced, CrashMode::UndoDirOps] {
        let after = sim.crash(mode, 0);
        assert_eq!(
            read(&after, &a).unwrap(),
            b"A",
            "{mode:?}: rename not undone"
        );
        assert!(
            !after.exists(&b).unwrap(),
            "{mode:?}: unsynced rename survived"
        );
    }
}

#[test]
fn synced_rename_survives_and_replaces_the_target() {
    let sim = setup();
    let (tmp, current) = (dir().join("CURRENT.tmp"), dir().join("CURRENT"));
    for (name, body) in [(&current, &b"old"[..]), (&tmp, b"new")] {
        let f = sim.create(name, IoClass::Manifest).unwrap();
        f.append(body).unwrap();
        f.sync().unwrap();
    }
    sim.sync_dir(&dir()).unwrap();
    sim.rename(&tmp, &current).unwrap();
    sim.sync_dir(&dir()).unwrap();
    let after = sim.crash(CrashMode::DropUnsynced, 0);
    assert_eq!(read(&after, &current).unwrap(), b"new");
    assert!(!after.exists(&tmp).unwrap());
}

#[test]
fn unsynced_create_and_remove_are_undone() {
    let sim = setup();
    let old = dir().join("old");
    let f = sim.create(&old, IoClass::Log).unwrap();
    f.append(b"x").unwrap();
    f.sync().unwrap();
    sim.sync_dir(&dir()).unwrap();
    sim.remove(&old).unwrap();
    let new = dir().join("new");
    let g = sim.create(&new, IoClass::Log).unwrap();
    g.append(b"y").unwrap();
    g.sync().unwrap(); // data synced, but its name is not
    let after = sim.crash(CrashMode::DropUnsynced, 0);
    assert!(after.exists(&old).unwrap(), "unsynced remove survived");
    assert!(
        !after.exists(&new).unwrap(),
        "a file sync must not make its name durable"
    );
}

#[test]
fn crash_freezes_the_old_storage() {
    let sim = setup();
    let path = synced_file_with_tail(&sim);
    let f = sim.open(&path, IoClass::UserRead).unwrap();
    let _after = sim.crash(CrashMode::KeepAll, 0);
    assert!(sim.is_frozen());
    assert!(
        f.read_vec(0, 1).is_err(),
        "a frozen storage still served a read"
    );
    assert!(sim.create(&dir().join("g"), IoClass::Log).is_err());
}

#[test]
fn injected_faults_reach_the_caller() {
    let sim = setup();
    let f = sim.create(&dir().join("f"), IoClass::Log).unwrap();
    sim.inject_fault(FaultOp::Append, 1, false);
    f.append(b"1").unwrap();
    let err = f.append(b"2").unwrap_err();
    assert!(matches!(err, Error::Io { op: "append", .. }), "{err}");
    f.append(b"3").unwrap();
    assert_eq!(sim.read_file(&dir().join("f")).unwrap(), b"13");

    sim.inject_fault(FaultOp::Rename, 0, true);
    for _ in 0..2 {
        let err = sim.rename(&dir().join("f"), &dir().join("g")).unwrap_err();
        assert!(
            matches!(err, Error::Io { op: "rename", .. }),
            "sticky fault"
        );
    }
    sim.inject_fault(FaultOp::Read, 0, false);
    let r = sim.open(&dir().join("f"), IoClass::UserRead).unwrap();
    assert!(r.read_vec(0, 1).is_err());
    assert_eq!(r.read_vec(0, 2).unwrap(), b"13");
}

#[test]
fn failed_sync_loses_the_data_even_if_a_retry_succeeds() {
    let sim = setup();
    let path = dir().join("f");
    let f = sim.create(&path, IoClass::Log).unwrap();
    sim.sync_dir(&dir()).unwrap();
    f.append(b"AAAA").unwrap();
    sim.inject_fault(FaultOp::Sync, 0, false);
    assert!(f.sync().is_err());
    f.sync().unwrap(); // what an engine must never rely on
    let after = sim.crash(CrashMode::DropUnsynced, 0);
    assert_eq!(
        read(&after, &path).unwrap(),
        vec![0; 4],
        "retried sync persisted lost pages"
    );
}

#[test]
fn disk_full_is_reported() {
    let sim = setup();
    sim.set_capacity(Some(10));
    let f = sim.create(&dir().join("f"), IoClass::Log).unwrap();
    f.append(&[1; 8]).unwrap();
    let err = f.append(&[2; 8]).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    sim.set_capacity(None);
    f.append(&[2; 8]).unwrap();
}

#[test]
fn freeze_after_the_nth_durability_point() {
    let sim = setup();
    let f = sim.create(&dir().join("f"), IoClass::Log).unwrap();
    sim.freeze_after(&FaultOp::DURABILITY_POINTS, 2);
    f.append(b"a").unwrap();
    f.sync().unwrap();
    f.append(b"b").unwrap();
    sim.sync_dir(&dir()).unwrap();
    assert!(sim.is_frozen());
    assert!(f.append(b"c").is_err());
    let after = sim.crash(CrashMode::DropUnsynced, 0);
    assert_eq!(read(&after, &dir().join("f")).unwrap(), b"a");
}

#[test]
fn locks_conflict() {
    let sim = setup();
    let lock = dir().join("LOCK");
    let held = sim.lock(&lock, LockMode::Exclusive).unwrap();
    assert!(matches!(
        sim.lock(&lock, LockMode::Exclusive),
        Err(Error::Locked { .. })
    ));
    assert!(matches!(
        sim.lock(&lock, LockMode::Shared),
        Err(Error::Locked { .. })
    ));
    drop(held);
    let a = sim.lock(&lock, LockMode::Shared).unwrap();
    let _b = sim.lock(&lock, LockMode::Shared).unwrap();
    assert!(sim.lock(&lock, LockMode::Exclusive).is_err());
    drop(a);
}

#[test]
fn truncate_then_crash() {
    let sim = setup();
    let path = synced_file_with_tail(&sim);
    let f = sim.open_append(&path, IoClass::Log).unwrap();
    f.truncate(3).unwrap();
    assert_eq!(sim.read_file(&path).unwrap(), b"dur");
    let undone = sim.clone().crash(CrashMode::DropUnsynced, 0);
    assert_eq!(
        read(&undone, &path).unwrap(),
        b"durable|",
        "unsynced truncate reverted"
    );
}

/// A new directory's name is durable only once its parent is synced: `create_dir_all` does it,
/// and a directory whose parent sync failed vanishes in a power loss, with its files.
#[test]
fn new_directories_are_durable_only_after_their_parent_sync() {
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new("/a/b")).unwrap();
    let after = sim.crash(CrashMode::UndoDirOps, 1);
    assert!(
        after.exists(Path::new("/a/b")).unwrap(),
        "synced directory lost"
    );

    let sim = SimStorage::new();
    sim.create_dir_all(Path::new("/a")).unwrap();
    sim.inject_fault(FaultOp::SyncDir, 0, false);
    assert!(sim.create_dir_all(Path::new("/a/b/c")).is_err());
    assert!(
        sim.exists(Path::new("/a/b/c")).unwrap(),
        "live view lost the directory"
    );
    let f = sim.create(Path::new("/a/b/c/f"), IoClass::Log).unwrap();
    f.append(b"data").unwrap();
    f.sync().unwrap();
    sim.sync_dir(Path::new("/a/b/c")).unwrap();
    for mode in [CrashMode::UndoDirOps, CrashMode::DropUnsynced] {
        let after = sim.crash(mode, 2);
        assert!(after.exists(Path::new("/a")).unwrap());
        assert!(
            !after.exists(Path::new("/a/b")).unwrap(),
            "{mode:?}: a directory whose parent was never synced survived"
        );
        assert!(!after.exists(Path::new("/a/b/c/f")).unwrap());
    }
    let after = sim.crash(CrashMode::KeepAll, 3);
    assert!(after.exists(Path::new("/a/b/c/f")).unwrap());
    // Calling it again on the existing path makes the whole path durable.
    let sim = SimStorage::new();
    sim.inject_fault(FaultOp::SyncDir, 0, false);
    assert!(sim.create_dir_all(Path::new("/a/b/c")).is_err());
    sim.create_dir_all(Path::new("/a/b/c")).unwrap();
    let again = sim.crash(CrashMode::UndoDirOps, 4);
    assert!(
        again.exists(Path::new("/a/b/c")).unwrap(),
        "retry left the path unsynced"
    );
}

/// A synced file `durable|` preallocated to 32 bytes (synced), then `unsynced` appended into
/// the preallocated region.
fn preallocated_file(sim: &SimStorage) -> (PathBuf, Box<dyn engine_api::WritableFile>) {
    let path = dir().join("p");
    let f = sim.create(&path, IoClass::Log).unwrap();
    f.append(b"durable|").unwrap();
    f.preallocate(32).unwrap();
    f.sync().unwrap();
    sim.sync_dir(&dir()).unwrap();
    f.append(b"unsynced").unwrap();
    (path, f)
}

fn zero_padded(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.resize(len, 0);
    v
}

#[test]
fn a_preallocated_tail_reads_as_zeros_and_appends_stay_at_the_logical_end() {
    let sim = setup();
    let (path, f) = preallocated_file(&sim);
    assert_eq!(f.len(), 16, "the logical end");
    assert_eq!(sim.file_len(&path).unwrap(), 32, "the file's size");
    assert_eq!(
        read(&sim, &path).unwrap(),
        zero_padded(b"durable|unsynced", 32)
    );
    f.truncate(f.len()).unwrap();
    assert_eq!(
        read(&sim, &path).unwrap(),
        b"durable|unsynced",
        "the tail is cut"
    );
}

#[test]
fn a_crash_keeps_a_synced_preallocation_as_zeros_after_the_last_synced_byte() {
    let sim = setup();
    let (path, _f) = preallocated_file(&sim);
    let after = sim.crash(CrashMode::DropUnsynced, 1);
    assert_eq!(read(&after, &path).unwrap(), zero_padded(b"durable|", 32));
    let after = sim.crash(CrashMode::KeepAll, 1);
    assert_eq!(
        read(&after, &path).unwrap(),
        zero_padded(b"durable|unsynced", 32)
    );
    let after = sim.crash(CrashMode::KeepPrefix, 7);
    let bytes = read(&after, &path).unwrap();
    assert_eq!(bytes.len(), 32, "the synced size survives");
    assert!(bytes.starts_with(b"durable|"));
}

/// A synced file `abc` preallocated to 64 bytes; `sync_prealloc`: that size synced too.
fn abc_preallocated(sim: &SimStorage, sync_prealloc: bool) -> Box<dyn engine_api::WritableFile> {
    let f = sim.create(&dir().join("q"), IoClass::Log).unwrap();
    f.append(b"abc").unwrap();
    f.sync().unwrap();
    sim.sync_dir(&dir()).unwrap();
    f.preallocate(64).unwrap();
    if sync_prealloc {
        f.sync().unwrap();
    }
    f
}

#[test]
fn an_unsynced_preallocation_or_cut_may_be_lost_in_a_crash() {
    let path = dir().join("q");
    let sim = setup();
    drop(abc_preallocated(&sim, false));
    let after = sim.crash(CrashMode::DropUnsynced, 1);
    assert_eq!(
        read(&after, &path).unwrap(),
        b"abc",
        "unsynced preallocation"
    );
    let sim = setup();
    abc_preallocated(&sim, true).truncate(3).unwrap();
    let after = sim.crash(CrashMode::DropUnsynced, 1);
    assert_eq!(
        read(&after, &path).unwrap(),
        zero_padded(b"abc", 64),
        "unsynced cut"
    );
    let sim = setup();
    let f = abc_preallocated(&sim, true);
    f.truncate(3).unwrap();
    f.sync().unwrap();
    let after = sim.crash(CrashMode::DropUnsynced, 1);
    assert_eq!(read(&after, &path).unwrap(), b"abc", "synced cut");
}

#[test]
fn open_append_on_a_preallocated_file_appends_after_its_zeros() {
    let sim = setup();
    let (path, f) = preallocated_file(&sim);
    drop(f);
    let f = sim.open_append(&path, IoClass::Log).unwrap();
    assert_eq!(f.len(), 32, "nothing on disk tells the logical end");
    f.append(b"x").unwrap();
    let mut expected = zero_padded(b"durable|unsynced", 32);
    expected.push(b'x');
    assert_eq!(read(&sim, &path).unwrap(), expected);
}

#[test]
fn a_preallocation_counts_no_written_bytes() {
    let counting = engine_api::CountingStorage::new(std::sync::Arc::new(setup()));
    let f = counting.create(&dir().join("c"), IoClass::Log).unwrap();
    f.append(b"abc").unwrap();
    f.preallocate(1 << 20).unwrap();
    let log = counting.counters().snapshot();
    assert_eq!(log.class(IoClass::Log).bytes_written, 3);
}
