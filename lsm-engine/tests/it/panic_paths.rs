//! Panics in the write path: a writer that unwinds after its WAL record reached the file, and
//! before the writer's own record of the WAL (its length, the sequence numbers) caught up,
//! leaves the two disagreeing. The engine must poison before it lets go of the writer lock, as
//! after a failed append: a write that went on would be appended after bytes the writer does
//! not know of, under sequence numbers the lost record already holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use engine_api::testing::hooked::{Hook, HookedStorage, Op};
use engine_api::{Engine, Error, Result, SyncPolicy};
use lsm_engine::LsmEngine;

use crate::common::default_options;

/// The next WAL append panics once its bytes reached the file.
#[derive(Default)]
struct PanicAfterWalAppend(AtomicBool);

impl Hook for PanicAfterWalAppend {
    fn after(&self, op: &Op<'_>, _ok: bool) -> Result<()> {
        let wal_append = matches!(op, Op::Append(..)) && op.on(".log");
        if wal_append && self.0.swap(false, Ordering::SeqCst) {
            panic!("injected: a panic after a WAL append reached the file");
        }
        Ok(())
    }
}

/// Puts `key` on a thread; its outcome, or `None` if it did not return within 5 s.
fn put_within_5s(
    engine: &Arc<LsmEngine>,
    key: &'static [u8],
    value: &'static [u8],
) -> Option<Result<()>> {
    let (tx, rx) = mpsc::channel();
    let engine = Arc::clone(engine);
    std::thread::spawn(move || tx.send(engine.put(key, value)));
    rx.recv_timeout(Duration::from_secs(5)).ok()
}

#[test]
fn a_writer_panicking_in_its_wal_append_poisons_before_a_write_lands_after_it() {
    for policy in [SyncPolicy::Never, SyncPolicy::Always] {
        let storage = HookedStorage::<PanicAfterWalAppend>::default();
        let open = || LsmEngine::open("/db", default_options(Arc::new(storage.clone()), policy));
        let engine = Arc::new(open().expect("open"));
        engine.put(b"before", b"v").expect("put");
        storage.hook.0.store(true, Ordering::SeqCst);
        let e = Arc::clone(&engine);
        let panicked = std::thread::spawn(move || drop(e.put(b"k", b"panicked"))).join();
        assert!(
            panicked.is_err(),
            "{policy:?}: the injected panic did not happen"
        );
        let after = put_within_5s(&engine, b"k", b"after")
            .unwrap_or_else(|| panic!("{policy:?}: the next writer waited for ever"));
        if after.is_ok() {
            drop(Arc::into_inner(engine).expect("one handle"));
            let reopened = open().map(|e| e.get(b"k"));
            assert!(
                matches!(reopened, Ok(Ok(Some(ref v))) if v[..] == b"after"[..]),
                "{policy:?}: a write answered Ok reads back after a reopen as {reopened:?}"
            );
            panic!("{policy:?}: a writer that panicked in its WAL append left the engine writable");
        }
        assert!(
            matches!(after, Err(Error::Poisoned { .. })),
            "{policy:?}: {after:?}"
        );
    }
}
