//! Panics outside the append (the append's own are in `write_groups.rs`): in a rotation that
//! `compact()` starts, in a merge after its commit point, in a sync. Each unwinds past state
//! that two parts of the engine must agree on; the engine must poison before it lets go of
//! the lock that guards them, so that no later write, merge or sync builds on the disagreement.
//!
//! The storage below panics once, at the next operation that matches what a test armed.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bitcask_engine::BitcaskEngine;
use engine_api::testing::hooked::{Before, Hook, HookedStorage, Op};
use engine_api::{Engine, Error, IoClass, Result, SyncPolicy};
use parking_lot::Mutex;

use crate::common::{on_data, options, tiny_manual};

/// What the next panic is armed for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum At {
    /// A data-file append, once its bytes reached the file.
    DataAppend,
    /// A data-file sync, before it runs.
    DataSync,
    /// A rename from a name ending in `.merging`, before it runs.
    MergingRename,
    /// A sync of a merge output (`.merging`), before it runs.
    MergingSync,
    /// An open of a sealed file for its hint build, before it runs.
    HintOpen,
}

/// Panics once, at the next operation that matches what was armed.
#[derive(Default)]
struct PanicOnce(Mutex<Option<At>>);

impl PanicOnce {
    fn arm(&self, at: At) {
        *self.0.lock() = Some(at);
    }

    /// Panics if armed for `at` (and disarms).
    fn fire(&self, at: At) {
        let mut armed = self.0.lock();
        if *armed == Some(at) {
            *armed = None;
            drop(armed);
            panic!("injected: a panic at {at:?}");
        }
    }
}

impl Hook for PanicOnce {
    fn before(&self, op: &Op<'_>) -> Before {
        match *op {
            Op::Sync(_) if on_data(op) => self.fire(At::DataSync),
            Op::Sync(_) if op.on(".merging") => self.fire(At::MergingSync),
            Op::Open(_, IoClass::Hint) => self.fire(At::HintOpen),
            Op::Rename { from, .. } if from.extension().is_some_and(|e| e == "merging") => {
                self.fire(At::MergingRename);
            }
            _ => {}
        }
        Before::Run
    }

    fn after(&self, op: &Op<'_>, _ok: bool) -> Result<()> {
        if matches!(op, Op::Append(..)) && on_data(op) {
            self.fire(At::DataAppend);
        }
        Ok(())
    }
}

/// A [`engine_api::SimStorage`] that panics once at the operation armed.
type Panicky = HookedStorage<PanicOnce>;

const DIR: &str = "/db";

/// Runs `f` on a thread and expects it to panic (the injected panic).
fn panics(what: &str, f: impl FnOnce() + Send + 'static) {
    let outcome = std::thread::spawn(f).join();
    assert!(
        outcome.is_err(),
        "{what}: the injected panic did not happen"
    );
}

/// Puts `key` on a thread; its outcome, or `None` if it did not return within 5 s.
fn put_within_5s(engine: &Arc<BitcaskEngine>, key: &'static [u8]) -> Option<Result<()>> {
    let (tx, rx) = mpsc::channel();
    let engine = Arc::clone(engine);
    std::thread::spawn(move || tx.send(engine.put(key, b"v")));
    rx.recv_timeout(Duration::from_secs(5)).ok()
}

/// `compact()` seals the active file under the writer mutex (`rotate_if_used`); a panic in
/// the seal's append once its bytes reached the file leaves them past the writer's end, as a
/// panicking append of a write does (`write_groups`), and must poison the same way: a write
/// that went on would be appended after the seal and indexed where the seal is.
#[test]
fn a_compaction_panicking_in_its_seal_append_poisons_before_a_write_lands_on_its_bytes() {
    for policy in [SyncPolicy::Never, SyncPolicy::Always] {
        let seam = Panicky::default();
        let engine = Arc::new(
            BitcaskEngine::open(DIR, options(Arc::new(seam.clone()), policy)).expect("open"),
        );
        engine.put(b"before", b"v").expect("put");
        seam.hook.arm(At::DataAppend);
        let e = Arc::clone(&engine);
        panics("compact", move || drop(e.compact()));
        let after = put_within_5s(&engine, b"afte")
            .unwrap_or_else(|| panic!("{policy:?}: the next writer waited for ever"));
        if after.is_ok() {
            let got = engine.get(b"afte");
            assert!(
                matches!(got, Ok(Some(ref v)) if v[..] == b"v"[..]),
                "{policy:?}: a write answered Ok reads back as {got:?}"
            );
        }
        assert!(
            matches!(after, Err(Error::Poisoned { .. })),
            "{policy:?}: a compaction that panicked in its seal left the engine writable: {after:?}"
        );
    }
}

/// Puts enough keys under tiny files to seal a few.
fn fill(engine: &BitcaskEngine, tag: &str) {
    for i in 0..40 {
        let key = format!("key{i:03}");
        engine
            .put(key.as_bytes(), format!("{tag}{i}").as_bytes())
            .expect("put");
    }
}

/// A merge that panics after its commit point, in the roll-forward (here renaming its first
/// output from `.merging` to `.data`), leaves its commit record for open to finish. The
/// engine must poison, as a roll-forward that fails does: a merge that went on would take
/// the half-rolled output as an input and remove it, and the commit record left behind would
/// then name an output that is gone, so the next open would refuse the directory.
#[test]
fn a_merge_panicking_in_its_roll_forward_poisons_and_the_store_reopens() {
    let seam = Panicky::default();
    let opts = || tiny_manual(Arc::new(seam.clone()), SyncPolicy::Always);
    let engine = Arc::new(BitcaskEngine::open(DIR, opts()).expect("open"));
    fill(&engine, "a");
    seam.hook.arm(At::MergingRename);
    let e = Arc::clone(&engine);
    panics("compact", move || drop(e.compact()));
    // Whatever is refused from here on, what was acknowledged must survive a reopen.
    let more = (0..40).map(|i| {
        let key = format!("key{i:03}");
        (
            key.clone(),
            engine.put(key.as_bytes(), format!("b{i}").as_bytes()),
        )
    });
    let more: Vec<(String, Result<()>)> = more.collect();
    let second = engine.compact();
    let accepted = more.iter().filter(|(_, r)| r.is_ok()).count();
    drop(Arc::into_inner(engine).expect("one handle"));
    let engine = BitcaskEngine::open(DIR, opts()).unwrap_or_else(|e| {
        panic!(
            "the store does not reopen ({accepted} writes and a compaction ({:?}) were \
             accepted after the panic): {e}",
            second.map(|s| s.files_in)
        )
    });
    for (i, (key, result)) in more.iter().enumerate() {
        let want = if result.is_ok() {
            format!("b{i}")
        } else {
            format!("a{i}")
        };
        let got = engine.get(key.as_bytes()).expect("get");
        assert_eq!(got.as_deref(), Some(want.as_bytes()), "{key}");
    }
}

/// A data-file sync that panics (under `Always`, the group-commit leader's) has an unknown
/// outcome, as a failed one does: the engine must poison (never retry it), and no writer
/// waiting for that sync may wait for ever.
#[test]
fn a_sync_panicking_poisons_and_no_writer_waits_for_ever() {
    let seam = Panicky::default();
    let engine = Arc::new(
        BitcaskEngine::open(DIR, options(Arc::new(seam.clone()), SyncPolicy::Always))
            .expect("open"),
    );
    engine.put(b"before", b"v").expect("put");
    seam.hook.arm(At::DataSync);
    let e = Arc::clone(&engine);
    panics("put", move || drop(e.put(b"pani", b"v")));
    let after = put_within_5s(&engine, b"afte").expect("the next writer waited for ever");
    assert!(
        matches!(after, Err(Error::Poisoned { .. })),
        "a sync that panicked left the engine writable: {after:?}"
    );
}

/// `Engine::sync` (`Never`) whose sync panics: the next sync must not run it again.
#[test]
fn an_explicit_sync_panicking_poisons() {
    let seam = Panicky::default();
    let engine = Arc::new(
        BitcaskEngine::open(DIR, options(Arc::new(seam.clone()), SyncPolicy::Never)).expect("open"),
    );
    engine.put(b"before", b"v").expect("put");
    seam.hook.arm(At::DataSync);
    let e = Arc::clone(&engine);
    panics("sync", move || drop(e.sync()));
    let again = engine.sync();
    assert!(
        matches!(again, Err(Error::Poisoned { .. })),
        "a sync after one that panicked ran: {again:?}"
    );
}

/// A clean close that panics in its seal (the seal's sync, or its append once the bytes
/// reached the file) happens in `Drop`, with no other handle left: the engine is gone with it
/// (its directory lock released), so what it leaves is what a process crash at that point
/// leaves, which open repairs. Pinned: every acknowledged write is there after a reopen
/// (`Never`), and after a power loss (`Always`).
#[test]
fn a_close_panicking_in_its_seal_loses_nothing_acknowledged() {
    for at in [At::DataSync, At::DataAppend] {
        for policy in [SyncPolicy::Never, SyncPolicy::Always] {
            let seam = Panicky::default();
            let engine =
                BitcaskEngine::open(DIR, options(Arc::new(seam.clone()), policy)).expect("open");
            fill(&engine, "a");
            seam.hook.arm(at);
            panics("close", move || drop(engine));
            // A crash image freezes the live storage: one or the other.
            let (what, sim) = match policy {
                SyncPolicy::Always => {
                    let crashed = seam.sim.crash(engine_api::CrashMode::DropUnsynced, 1);
                    ("power loss", crashed)
                }
                _ => ("reopen", seam.sim.clone()),
            };
            {
                let engine = BitcaskEngine::open(DIR, options(Arc::new(sim), policy))
                    .unwrap_or_else(|e| panic!("{at:?} {policy:?} {what}: {e}"));
                for i in 0..40 {
                    let got = engine.get(format!("key{i:03}").as_bytes()).expect("get");
                    let want = format!("a{i}");
                    assert_eq!(
                        got.as_deref(),
                        Some(want.as_bytes()),
                        "{at:?} {policy:?} {what}"
                    );
                }
            }
        }
    }
}

/// A merge output's sync that panics, before the merge's commit point, has an unknown outcome
/// as a failed one has, and a failed one poisons (`Poison::guard`): so must the panic. The
/// outputs are abandoned either way; what matters is that no later sync runs as if the
/// failure had not happened.
#[test]
fn a_merge_output_sync_panicking_poisons() {
    let seam = Panicky::default();
    let engine = Arc::new(
        BitcaskEngine::open(DIR, tiny_manual(Arc::new(seam.clone()), SyncPolicy::Always))
            .expect("open"),
    );
    fill(&engine, "a");
    seam.hook.arm(At::MergingSync);
    let e = Arc::clone(&engine);
    panics("compact", move || drop(e.compact()));
    let after = put_within_5s(&engine, b"afte").expect("the next writer waited for ever");
    assert!(
        matches!(after, Err(Error::Poisoned { .. })),
        "a merge output sync that panicked left the engine writable: {after:?}"
    );
}

/// Hint files in the store.
fn hints(seam: &Panicky) -> usize {
    let files = seam.sim.all_files().into_iter();
    files
        .filter(|p| p.extension().is_some_and(|x| x == "hint"))
        .count()
}

/// A panic in the background worker (here in a hint build, before anything is written) ends
/// no more than that job: it is recorded where a failed hint or merge is
/// (`last_merge_error`), and the worker goes on, so later sealed files still get their hints.
#[test]
fn a_worker_panicking_in_a_hint_build_records_it_and_goes_on() {
    let seam = Panicky::default();
    let engine = BitcaskEngine::open(DIR, tiny_manual(Arc::new(seam.clone()), SyncPolicy::Never))
        .expect("open");
    seam.hook.arm(At::HintOpen);
    fill(&engine, "a");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while engine.last_merge_error().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let noted = engine.last_merge_error().unwrap_or_default();
    assert!(
        noted.contains("panicked"),
        "the worker's panic was not recorded: {noted:?}"
    );
    let before = hints(&seam);
    fill(&engine, "b");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hints(&seam) <= before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        hints(&seam) > before,
        "no hint was written after the worker's panic ({before} hints)"
    );
}
