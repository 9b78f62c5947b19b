//! [`GatedStorage`]: a [`SimStorage`] whose next file sync, once armed, waits at a gate the test
//! opens, so that a test can look at an engine while a write is appended but not yet durable.

use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::hooked::{Before, Hook, HookedStorage, Op};
#[cfg(doc)]
use crate::{SimStorage, WritableFile};

/// A one-shot gate: once armed, the next [`WritableFile::sync`] waits at it until it is opened.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    armed: bool,
    /// A sync is waiting at the gate.
    holding: bool,
    open: bool,
}

impl Gate {
    /// Arms the gate: the next sync will wait at it.
    pub fn arm(&self) {
        *self.state.lock() = GateState {
            armed: true,
            ..GateState::default()
        };
    }

    fn pass(&self) {
        let mut st = self.state.lock();
        if !st.armed {
            return;
        }
        st.armed = false;
        st.holding = true;
        self.cv.notify_all();
        while !st.open {
            self.cv.wait(&mut st);
        }
        st.holding = false;
    }

    /// Waits until a sync is held at the gate; panics after ten seconds without one.
    pub fn wait_holding(&self) {
        let mut st = self.state.lock();
        while !st.holding {
            let waited = self.cv.wait_for(&mut st, Duration::from_secs(10));
            assert!(
                !waited.timed_out() || st.holding,
                "no sync reached the gate"
            );
        }
    }

    /// Opens the gate: the held sync (and every later one) goes on.
    pub fn open(&self) {
        self.state.lock().open = true;
        self.cv.notify_all();
    }
}

impl Hook for Gate {
    fn before(&self, op: &Op<'_>) -> Before {
        if matches!(op, Op::Sync(_)) {
            self.pass();
        }
        Before::Run
    }
}

/// A [`SimStorage`] with every writable file's `sync` passing through a [`Gate`] first
/// (`storage.hook` is the gate; inject faults into `storage.sim`).
pub type GatedStorage = HookedStorage<Gate>;
