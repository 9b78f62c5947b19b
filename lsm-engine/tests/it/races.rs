//! Races between reads, snapshots and compaction, forced with the engine's test hooks so that
//! the bad interleaving happens every run: a thread stops at the hook while the test writes a
//! newer version and compacts, then goes on.

use std::sync::mpsc;

use engine_api::{Engine, KeyRange, SimStorage};
use lsm_engine::LsmEngine;

use crate::common::open_tiny_manual;

/// A hook that tells the test it was reached, then waits until the test lets it go.
fn stop_here() -> (
    impl FnOnce() + Send + 'static,
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
) {
    let (reached_tx, reached) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let hook = move || {
        let _ = reached_tx.send(());
        let _ = release_rx.recv();
    };
    (hook, reached, release)
}

/// Writes `v2` over `key` and compacts everything: with no snapshot pinned, the compaction
/// drops `v1`, shadowed by `v2`.
fn overwrite_and_compact(e: &LsmEngine, key: &[u8]) {
    e.put(key, b"v2").unwrap();
    e.compact().unwrap();
}

/// Runs `read` on another thread, stopped at the read hook while `key` is overwritten and
/// compacted; returns what it read.
fn read_across_a_compaction<T: Send>(
    e: &LsmEngine,
    key: &[u8],
    read: impl FnOnce(&LsmEngine) -> T + Send,
) -> T {
    e.put(key, b"v1").unwrap();
    e.flush().unwrap();
    let (hook, reached, release) = stop_here();
    e.test_hooks().between_read_steps(hook);
    std::thread::scope(|s| {
        let reader = s.spawn(move || read(e));
        reached.recv().unwrap();
        overwrite_and_compact(e, key);
        release.send(()).unwrap();
        reader.join().unwrap()
    })
}

fn either_version(got: Option<&[u8]>, what: &str) {
    assert!(
        got == Some(b"v1".as_slice()) || got == Some(b"v2".as_slice()),
        "{what} read {:?}: the version it needed was compacted away under it",
        got.map(String::from_utf8_lossy)
    );
}

#[test]
fn a_read_pins_its_tables_before_it_takes_its_sequence_number() {
    let sim = SimStorage::new();
    let e = open_tiny_manual(&sim);
    let got = read_across_a_compaction(&e, b"get", |e| e.get(b"get").unwrap());
    either_version(got.as_deref(), "get");
    let got = read_across_a_compaction(&e, b"scan", |e| {
        e.scan(KeyRange::all())
            .unwrap()
            .map(|r| r.unwrap())
            .find(|(k, _)| &k[..] == b"scan")
            .map(|(_, v)| v.to_vec())
    });
    either_version(got.as_deref(), "scan");
    let got = read_across_a_compaction(&e, b"explain", |e| e.explain_get(b"explain").unwrap());
    either_version(got.value.as_deref(), "explain_get");
}

#[test]
fn a_snapshot_is_pinned_before_a_compaction_can_plan_past_it() {
    let sim = SimStorage::new();
    let e = open_tiny_manual(&sim);
    e.put(b"k", b"v1").unwrap();
    e.flush().unwrap();
    let before = e.snapshot().sequence();
    let (hook, reached, release) = stop_here();
    e.test_hooks().before_snapshot(hook);
    let (seq, got) = std::thread::scope(|s| {
        let taker = s.spawn(|| {
            let snap = e.snapshot();
            (snap.sequence(), e.get_at(&snap, b"k").unwrap())
        });
        reached.recv().unwrap();
        overwrite_and_compact(&e, b"k");
        release.send(()).unwrap();
        taker.join().unwrap()
    });
    let want: &[u8] = if seq == before { b"v1" } else { b"v2" };
    assert_eq!(
        got.as_deref(),
        Some(want),
        "a snapshot at {seq} lost the version it reads (the compaction planned past it)"
    );
}
