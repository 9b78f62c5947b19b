//! OsStorage on a real temporary directory.

use engine_api::{Error, IoClass, LockMode, OsStorage, Storage, atomic_replace};

#[test]
fn append_read_rename_remove_list() {
    let tmp = tempfile::tempdir().unwrap();
    let os = OsStorage::new();
    let dir = tmp.path();
    let f = os.create(&dir.join("a"), IoClass::Log).unwrap();
    f.append(b"hello ").unwrap();
    let r = os.open(&dir.join("a"), IoClass::UserRead).unwrap();
    f.append(b"world").unwrap();
    f.sync().unwrap();
    os.sync_dir(dir).unwrap();
    assert_eq!(
        r.read_vec(6, 5).unwrap(),
        b"world",
        "reader sees later appends"
    );
    assert!(r.read_vec(8, 5).is_err(), "read past the end must fail");
    assert!(
        os.create(&dir.join("a"), IoClass::Log).is_err(),
        "create must not clobber"
    );
    os.rename(&dir.join("a"), &dir.join("b")).unwrap();
    assert_eq!(os.list(dir).unwrap(), vec!["b".to_string()]);
    assert_eq!(
        r.read_all().unwrap(),
        b"hello world",
        "open handle survives rename"
    );
    os.remove(&dir.join("b")).unwrap();
    assert_eq!(
        r.read_all().unwrap(),
        b"hello world",
        "open handle survives remove"
    );
    assert!(os.list(dir).unwrap().is_empty());
    let g = os.open_append(&dir.join("c").with_file_name("c"), IoClass::Log);
    assert!(g.is_err());
}

#[test]
fn truncate_and_reopen_for_append() {
    let tmp = tempfile::tempdir().unwrap();
    let os = OsStorage::new();
    let path = tmp.path().join("log");
    let f = os.create(&path, IoClass::Log).unwrap();
    f.append(b"0123456789").unwrap();
    f.truncate(4).unwrap();
    drop(f);
    let f = os.open_append(&path, IoClass::Log).unwrap();
    assert_eq!(f.len(), 4);
    f.append(b"xy").unwrap();
    assert_eq!(
        os.open(&path, IoClass::Other).unwrap().read_all().unwrap(),
        b"0123xy"
    );
}

#[test]
fn atomic_replace_and_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let os = OsStorage::new();
    atomic_replace(&os, tmp.path(), "CURRENT", b"one", IoClass::Manifest).unwrap();
    atomic_replace(&os, tmp.path(), "CURRENT", b"two", IoClass::Manifest).unwrap();
    let current = tmp.path().join("CURRENT");
    assert_eq!(
        os.open(&current, IoClass::Other)
            .unwrap()
            .read_all()
            .unwrap(),
        b"two"
    );
    let lock = tmp.path().join("LOCK");
    let held = os.lock(&lock, LockMode::Exclusive).unwrap();
    assert!(matches!(
        os.lock(&lock, LockMode::Exclusive),
        Err(Error::Locked { .. })
    ));
    drop(held);
    os.lock(&lock, LockMode::Exclusive).unwrap();
}

/// A shared lock never creates the lock file and opens it read-only; readers and a writer
/// exclude each other whether or not the file exists (the directory is locked too).
#[test]
fn shared_lock_writes_nothing_and_still_excludes_a_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let os = OsStorage::new();
    let lock = tmp.path().join("LOCK");
    let reader = os.lock(&lock, LockMode::Shared).unwrap();
    assert!(!lock.exists(), "a shared lock created the lock file");
    let second = os.lock(&lock, LockMode::Shared).unwrap();
    assert!(
        matches!(
            os.lock(&lock, LockMode::Exclusive),
            Err(Error::Locked { .. })
        ),
        "a writer got the lock while readers held a directory without a lock file"
    );
    drop((reader, second));
    let writer = os.lock(&lock, LockMode::Exclusive).unwrap();
    assert!(lock.exists(), "an exclusive lock creates its file");
    assert!(matches!(
        os.lock(&lock, LockMode::Shared),
        Err(Error::Locked { .. })
    ));
    drop(writer);
    // The file now exists: a reader locks it (opened read-only) and still excludes a writer.
    let _reader = os.lock(&lock, LockMode::Shared).unwrap();
    assert!(matches!(
        os.lock(&lock, LockMode::Exclusive),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn preallocate_extends_with_zeros_while_appends_stay_at_the_logical_end() {
    let tmp = tempfile::tempdir().unwrap();
    let os = OsStorage::new();
    let path = tmp.path().join("log");
    let f = os.create(&path, IoClass::Log).unwrap();
    f.append(b"abc").unwrap();
    f.preallocate(16).unwrap();
    f.preallocate(8).unwrap(); // never shrinks
    assert_eq!(f.len(), 3, "the logical end stays");
    assert_eq!(os.file_len(&path).unwrap(), 16, "the file's size");
    f.append(b"de").unwrap();
    let mut expected = b"abcde".to_vec();
    expected.resize(16, 0);
    assert_eq!(
        os.open(&path, IoClass::Other).unwrap().read_all().unwrap(),
        expected
    );
    f.truncate(f.len()).unwrap();
    assert_eq!(
        os.file_len(&path).unwrap(),
        5,
        "truncate cuts the unused tail"
    );
    f.append(b"f").unwrap();
    assert_eq!(
        os.open(&path, IoClass::Other).unwrap().read_all().unwrap(),
        b"abcdef"
    );
}
