//! The order and the serialisation of syncs (issue 11, items 3 and 4): a seal never reaches
//! the disk before the data it seals; two syncs of the active file never race on an I/O error;
//! a poisoned engine writes no hint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::testing::crash_points::{self, CrashPoints};
use engine_api::testing::hooked::{Before, Hook, HookedStorage, Op};
use engine_api::{CrashMode, Engine, FaultOp, IoClass, Result, SyncPolicy};
use parking_lot::{Condvar, Mutex};

use crate::common::{options, tiny, tiny_manual_factory};

/// Item 3: a crash right after any append (the seal's included) or durability point, with the
/// unsynced tail garbled anywhere in its first half while its end survives (a sync cut by the
/// power loss that wrote the seal's page and not an earlier one), must reopen to a legal state.
/// Under `Never`, rotation seals files whose data was never synced: one `fdatasync` for data
/// and seal together is what this catches.
#[test]
fn a_seal_never_reaches_the_disk_before_its_data() {
    let mut after = FaultOp::DURABILITY_POINTS.to_vec();
    after.push(FaultOp::Append);
    let config = CrashPoints {
        after,
        modes: vec![
            CrashMode::GarbleBeforeEnd,
            CrashMode::GarbleTail,
            CrashMode::DropUnsynced,
        ],
    };
    for policy in [SyncPolicy::Never, SyncPolicy::Always] {
        let report = crash_points::run_with(
            &tiny_manual_factory,
            policy,
            &crash_points::default_workload(),
            &config,
        );
        eprintln!("bitcask {policy:?}: {report:?}");
        assert!(report.states_checked > 0);
    }
}

/// What a [`Hooked`] storage holds at its gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// The next file sync that fails: held after failing, before its error returns.
    FailedSync,
    /// The next open of a file for a hint build (class `Hint`): held before it opens.
    HintOpen,
}

#[derive(Default)]
struct GateState {
    hold: Option<Hold>,
    holding: bool,
    open: bool,
}

/// One gate at a chosen place, and a count of appends.
#[derive(Default)]
struct Gate {
    gate: (Mutex<GateState>, Condvar),
    appends: AtomicU64,
}

/// A [`engine_api::SimStorage`] with a [`Gate`].
type Hooked = HookedStorage<Gate>;

impl Gate {
    fn arm(&self, hold: Hold) {
        *self.gate.0.lock() = GateState {
            hold: Some(hold),
            ..GateState::default()
        };
    }

    fn pass(&self, at: Hold) {
        let (state, cv) = &self.gate;
        let mut st = state.lock();
        if st.hold != Some(at) {
            return;
        }
        st.hold = None;
        st.holding = true;
        cv.notify_all();
        while !st.open {
            cv.wait(&mut st);
        }
    }

    fn wait_holding(&self) {
        let (state, cv) = &self.gate;
        let mut st = state.lock();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !st.holding {
            assert!(Instant::now() < deadline, "nothing reached the gate");
            cv.wait_for(&mut st, Duration::from_millis(50));
        }
    }

    fn open_gate(&self) {
        self.gate.0.lock().open = true;
        self.gate.1.notify_all();
    }
}

impl Hook for Gate {
    fn before(&self, op: &Op<'_>) -> Before {
        match op {
            Op::Append(..) => {
                self.appends.fetch_add(1, Ordering::SeqCst);
            }
            Op::Open(_, IoClass::Hint) => self.pass(Hold::HintOpen),
            _ => {}
        }
        Before::Run
    }

    fn after(&self, op: &Op<'_>, ok: bool) -> Result<()> {
        if matches!(op, Op::Sync(_)) && !ok {
            self.pass(Hold::FailedSync);
        }
        Ok(())
    }
}

/// Waits up to `limit` for a thread to finish (it may legitimately be blocked: then the test
/// goes on and the thread finishes later).
fn wait_a_little<T>(t: &JoinHandle<T>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !t.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Item 4: the group-commit leader's sync fails (Linux reports a writeback error to one
/// caller only); before it returns, another writer appends and `Engine::sync` syncs the same
/// file, which succeeds. That sync must not acknowledge anything, and the other writer must
/// not be acknowledged: its bytes sit behind the failed ones.
#[test]
fn a_sync_racing_a_failed_sync_acknowledges_nothing() {
    let hooked = Hooked::default();
    let mut o: BitcaskOptions = options(Arc::new(hooked.clone()), SyncPolicy::Always);
    o.merge.auto = false;
    let e = Arc::new(BitcaskEngine::open("/db", o).unwrap());
    e.put(b"before", b"1").unwrap();
    hooked.sim.inject_fault(FaultOp::Sync, 0, false);
    hooked.hook.arm(Hold::FailedSync);
    let w1 = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || e.put(b"first", b"lost"))
    };
    hooked.hook.wait_holding();
    let appends = hooked.hook.appends.load(Ordering::SeqCst);
    let w2 = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || e.put(b"second", b"behind the hole"))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while hooked.hook.appends.load(Ordering::SeqCst) == appends {
        assert!(
            Instant::now() < deadline,
            "the second writer never appended"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let t = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || e.sync())
    };
    wait_a_little(&t, Duration::from_secs(2));
    hooked.hook.open_gate();
    let (r1, r2, rt) = (w1.join().unwrap(), w2.join().unwrap(), t.join().unwrap());
    assert!(r1.is_err(), "the write whose sync failed was acknowledged");
    assert!(
        r2.is_err(),
        "a write appended behind bytes whose sync failed was acknowledged"
    );
    assert!(
        rt.is_err(),
        "sync() succeeded after a failed sync of the same file"
    );
}

/// Item 4: `write_hint` refuses on a poisoned engine. The worker's hint build is held just
/// before it reads the sealed file; meanwhile a sync fails; the hint must not be written.
#[test]
fn a_poisoned_engine_writes_no_hint() {
    let hooked = Hooked::default();
    let mut o: BitcaskOptions = tiny(Arc::new(hooked.clone()), SyncPolicy::Never);
    o.merge.auto = false;
    let e = BitcaskEngine::open("/db", o).unwrap();
    hooked.hook.arm(Hold::HintOpen);
    for i in 0..40u32 {
        e.put(format!("k{i}").as_bytes(), &[7u8; 100]).unwrap();
    }
    hooked.hook.wait_holding();
    hooked.sim.inject_fault(FaultOp::Sync, 0, false);
    assert!(e.sync().is_err());
    hooked.hook.open_gate();
    drop(e);
    let hints: Vec<_> = hooked
        .sim
        .all_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "hint"))
        .collect();
    assert!(hints.is_empty(), "a poisoned engine wrote hints: {hints:?}");
}
