//! Under `SyncPolicy::Always` a write becomes visible only once it is durable, and writes are
//! published in sequence order: a storage wrapper holds a sync at a gate the test opens, so
//! the test can look at the engine while a write is appended but not yet durable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bitcask_engine::BitcaskEngine;
use engine_api::testing::gate::GatedStorage;
use engine_api::{Engine, Error, FaultOp, SimStorage, SyncPolicy};

use crate::common::{contents, open_tiny, options};

/// An `Always` engine on gated storage, merges only on demand (so that no background sync
/// takes the gate).
fn open_gated() -> (Arc<BitcaskEngine>, GatedStorage) {
    let storage = GatedStorage::default();
    let mut o = options(Arc::new(storage.clone()), SyncPolicy::Always);
    o.merge.auto = false;
    (Arc::new(BitcaskEngine::open("/db", o).unwrap()), storage)
}

fn get(e: &dyn Engine, key: &[u8]) -> Option<Vec<u8>> {
    e.get(key).unwrap().map(|v| v.to_vec())
}

/// Looks at `k` (get and scan) a few times while a write of it is held at the gate.
fn assert_unchanged(e: &dyn Engine, want: Option<&[u8]>) {
    for _ in 0..20 {
        assert_eq!(
            get(e, b"k").as_deref(),
            want,
            "a write was visible before it was durable"
        );
        assert_eq!(contents(e).get(&b"k"[..]).map(Vec::as_slice), want);
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_put_is_visible_only_once_durable() {
    let (e, storage) = open_gated();
    e.put(b"k", b"old").unwrap();
    storage.hook.arm();
    let writer = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || e.put(b"k", b"new"))
    };
    storage.hook.wait_holding();
    assert_unchanged(&*e, Some(b"old"));
    storage.hook.open();
    writer.join().unwrap().unwrap();
    assert_eq!(get(&*e, b"k").as_deref(), Some(&b"new"[..]));

    // A new key, and a delete, behave the same.
    storage.hook.arm();
    let writer = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || e.delete(b"k"))
    };
    storage.hook.wait_holding();
    assert_unchanged(&*e, Some(b"new"));
    storage.hook.open();
    writer.join().unwrap().unwrap();
    assert_eq!(get(&*e, b"k"), None);
}

#[test]
fn a_put_whose_sync_fails_is_never_visible() {
    let (e, storage) = open_gated();
    storage.hook.arm();
    let writer = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || e.put(b"k", b"new"))
    };
    storage.hook.wait_holding();
    assert_unchanged(&*e, None);
    storage.sim.inject_fault(FaultOp::Sync, 0, false);
    storage.hook.open();
    let err = writer.join().unwrap().unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_unchanged(&*e, None);
    assert!(matches!(e.put(b"other", b"v"), Err(Error::Poisoned { .. })));
    assert_eq!(get(&*e, b"k"), None);
}

#[test]
fn a_merge_waits_for_writes_in_its_inputs_to_be_published() {
    let (e, storage) = open_gated();
    e.put(b"k", b"old").unwrap();
    e.put(b"filler", b"x").unwrap();
    storage.hook.arm();
    let writer = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || e.put(b"k", b"new"))
    };
    storage.hook.wait_holding();
    // `compact` seals the active file (its seal sync passes: the gate holds one sync only)
    // and merges it, while the put in it is still unpublished.
    let merger = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || e.compact())
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !merger.is_finished(),
        "a merge ran over a file holding an unpublished write"
    );
    assert_unchanged(&*e, Some(b"old"));
    storage.hook.open();
    writer.join().unwrap().unwrap();
    let summary = merger.join().unwrap().unwrap();
    assert!(summary.jobs >= 1);
    assert_eq!(get(&*e, b"k").as_deref(), Some(&b"new"[..]));
    drop(e);
    let mut o = options(Arc::new(storage.sim.clone()), SyncPolicy::Always);
    o.merge.auto = false;
    let e = BitcaskEngine::open("/db", o).unwrap();
    assert_eq!(get(&e, b"k").as_deref(), Some(&b"new"[..]));
    assert_eq!(get(&e, b"filler").as_deref(), Some(&b"x"[..]));
}

const THREADS: u64 = 4;
const KEYS: u64 = 6;
const OPS: u64 = 300;

/// One acknowledged write: its key, value (`None`: a delete) and the ticks of a global clock
/// taken just before it was called and just after it returned.
struct Acked {
    key: u64,
    value: Option<Vec<u8>>,
    start: u64,
    end: u64,
}

fn value(t: u64, n: u64) -> Vec<u8> {
    let mut v = format!("t{t}-n{n}-").into_bytes();
    v.resize(20 + (n as usize * 7) % 60, b'.');
    v
}

fn key(k: u64) -> Vec<u8> {
    format!("key{k}").into_bytes()
}

/// What a key may hold at the end: the value of a write that no other write of the key
/// started after (real time orders those: a write that returned before another was called has
/// the lower sequence number, so it cannot be the last). Absent if no write left it set.
fn check_final(acked: &[Acked], all: &BTreeMap<Vec<u8>, Vec<u8>>) {
    for k in 0..KEYS {
        let writes: Vec<&Acked> = acked.iter().filter(|a| a.key == k).collect();
        let got = all.get(&key(k));
        let candidates: Vec<&&Acked> = writes
            .iter()
            .filter(|w| !writes.iter().any(|x| x.start > w.end))
            .collect();
        let fine = if writes.is_empty() {
            got.is_none()
        } else {
            candidates.iter().any(|w| w.value.as_ref() == got)
        };
        assert!(
            fine,
            "key{k} holds {:?}, not the value of any of its last writes {:?}",
            got.map(|v| String::from_utf8_lossy(v).into_owned()),
            candidates
                .iter()
                .map(|w| w
                    .value
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v).into_owned()))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn concurrent_writers_of_the_same_keys_through_merges() {
    let sim = SimStorage::new();
    let e: Arc<dyn Engine> = Arc::new(open_tiny(&sim, SyncPolicy::Always, true));
    let clock = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let merger = {
        let (e, done) = (Arc::clone(&e), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut merges = 0u64;
            while !done.load(Ordering::Relaxed) || merges < 3 {
                merges += e.compact().unwrap().jobs;
            }
            merges
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (e, clock) = (Arc::clone(&e), Arc::clone(&clock));
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for n in 0..OPS {
                    let k = (n * 5 + t * 3) % KEYS;
                    let v = (n % 9 != 4).then(|| value(t, n));
                    let start = clock.fetch_add(1, Ordering::SeqCst);
                    match &v {
                        Some(v) => e.put(&key(k), v).unwrap(),
                        None => e.delete(&key(k)).unwrap(),
                    }
                    let end = clock.fetch_add(1, Ordering::SeqCst);
                    // Our write is published: what we read now is it or a later one, never
                    // one of our own earlier writes.
                    if let Some(got) = e.get(&key(k)).unwrap() {
                        let mine = format!("t{t}-");
                        if got.starts_with(mine.as_bytes()) {
                            assert!(
                                Some(got.to_vec()) == v,
                                "thread {t} read its own older write of key{k}"
                            );
                        }
                    }
                    acked.push(Acked {
                        key: k,
                        value: v,
                        start,
                        end,
                    });
                }
                acked
            })
        })
        .collect();
    let acked: Vec<Acked> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    done.store(true, Ordering::Relaxed);
    assert!(merger.join().unwrap() >= 3, "too few merges ran");
    check_final(&acked, &contents(&*e));
    drop(e);
    let e = open_tiny(&sim, SyncPolicy::Always, false);
    check_final(&acked, &contents(&e));
}
