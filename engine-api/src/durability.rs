//! Building blocks both engines use to keep the durability contract: [`Poison`] (refuse writes
//! after a failed sync, never retry it), [`GroupCommit`] (concurrent writers share one sync) and
//! [`PeriodicTask`] (the background sync of [`crate::SyncPolicy::Periodic`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::{Error, Result};

/// A sticky failure flag. Once set it stays set for the life of the engine.
///
/// Every write checks it, so a clear flag is read from an atomic without the cause's lock. A
/// writer that must see a poison set by another thread has synchronised with it through the
/// lock or sync it waited on, and the flag is stored (release) before that, so it sees the flag.
#[derive(Debug, Default)]
pub struct Poison {
    set: AtomicBool,
    cause: Mutex<Option<String>>,
}

impl Poison {
    /// A clear flag.
    pub fn new() -> Self {
        Poison::default()
    }

    /// Sets the flag, keeping the first cause.
    pub fn set(&self, cause: &Error) {
        let mut slot = self.cause.lock();
        if slot.is_none() {
            *slot = Some(cause.to_string());
        }
        self.set.store(true, Ordering::Release);
    }

    /// `Err(Error::Poisoned)` once the flag is set.
    ///
    /// # Errors
    /// [`Error::Poisoned`] with the first cause.
    pub fn check(&self) -> Result<()> {
        if !self.set.load(Ordering::Acquire) {
            return Ok(());
        }
        match &*self.cause.lock() {
            None => Ok(()),
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
        }
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Runs a sync; if it fails, sets the flag before returning the error. A sync that panics
    /// may have failed: the flag is set as it unwinds.
    ///
    /// # Errors
    /// The sync's error.
    pub fn guard<T>(&self, sync: impl FnOnce() -> Result<T>) -> Result<T> {
        let cause = "a sync panicked: its outcome is unknown";
        self.on_unwind(cause, sync).inspect_err(|e| self.set(e))
    }

    /// Runs `f`; if it unwinds, sets the flag with `cause` first. For code between two changes
    /// that must agree (an append and the writer's record of it): a panic there leaves them
    /// disagreeing, and nothing may build on that.
    pub fn on_unwind<T>(&self, cause: &'static str, f: impl FnOnce() -> T) -> T {
        let unwinding = SetOnUnwind(self, cause);
        let out = f();
        // Not unwinding: dropping it would set the flag.
        std::mem::forget(unwinding);
        out
    }
}

/// Sets its flag when dropped, which [`Poison::on_unwind`] lets happen only while unwinding.
struct SetOnUnwind<'a>(&'a Poison, &'static str);

impl Drop for SetOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.set(&Error::Poisoned {
            cause: self.1.into(),
        });
    }
}

/// Group commit over a monotonically increasing log position (a sequence number or a byte
/// count across all log files).
///
/// A writer appends its record, notes the position just past it, and calls
/// [`GroupCommit::wait_durable`]. If no sync is running, it becomes the leader: it reads the
/// current end of the log, syncs, and marks everything up to that end durable, which covers
/// every writer that appended meanwhile. Writers that arrive while a sync runs wait for it and
/// then, if it did not cover them, one of them leads the next. A failed sync poisons: every
/// waiter gets the error and no sync is ever retried.
///
/// **Gathering.** Without more, `N` closed-loop writers split into two alternating groups of
/// about `N / 2`: the writers a sync covers come back and append while the next sync (led by
/// one that arrived during the last) already runs. So a leader first waits, before it reads the
/// end, until as many writers wait uncovered as did at the most since the last sync began (the
/// writers it knows are coming back), or until half the last sync's duration has passed,
/// whichever comes first (as PostgreSQL's `commit_delay`/`commit_siblings` and MySQL's
/// `binlog_group_commit_sync_delay`, but adaptive). A lone writer never waits; the wait holds
/// no engine lock (writers call this after releasing theirs) and starts no sync.
///
/// **Wake-ups.** Each waiting writer sleeps on a wake-up of its own. A leader ending its sync
/// takes the writers it covered off the list and wakes each of them once (they return without
/// the group's lock), and wakes only the oldest uncovered writer to lead next: the cycle from one
/// sync to the next is CPU on two cores, and a broadcast made every waiter take the mutex in
/// turn. `docs/durability.md` ("Group commit") has the steps.
#[derive(Debug)]
pub struct GroupCommit {
    state: Mutex<GroupState>,
    /// Wakes a gathering leader when a writer arrives.
    arrived: Condvar,
    poison: Poison,
    /// The longest a leader gathers; `None`: a fraction of the last sync's duration.
    max_gather: Option<Duration>,
}

#[derive(Debug, Default)]
struct GroupState {
    durable: u64,
    syncing: bool,
    /// The writers inside `wait_durable` (a handful: one per writing thread).
    waiting: Vec<Waiter>,
    /// The most writers seen waiting uncovered since the last sync began.
    peak: usize,
    /// How long the last sync took.
    last_sync: Duration,
    /// While a leader gathers: the uncovered writers it waits for (0: none gathers). An
    /// arriving writer wakes it only once they are all there.
    gather_for: usize,
    stats: GroupCommitStats,
}

/// Counters of a [`GroupCommit`], for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Syncs led through [`GroupCommit::wait_durable`].
    pub syncs: u64,
    /// Calls to [`GroupCommit::wait_durable`] that had to wait for a sync.
    pub waits: u64,
    /// Leaders that waited for writers to gather before syncing.
    pub gathers: u64,
    /// Gathers that ended at their time bound rather than with every expected writer.
    pub gather_timeouts: u64,
    /// Times a gathering leader was woken by an arriving writer while its group was still
    /// incomplete (each a futex wake and a context switch that found nothing to do).
    pub early_wakeups: u64,
    /// Times a sleeping writer was woken to look again (to lead the next sync, or to hear of a
    /// poison) rather than released as covered. At most one per sync ended while healthy.
    pub woken_to_look: u64,
}

/// A writer inside `wait_durable`: its position and where it sleeps.
#[derive(Debug)]
struct Waiter {
    pos: u64,
    slot: Arc<Slot>,
}

/// Where one waiting writer sleeps, so that whoever ends a sync wakes exactly the writers it
/// concerns, each with one `unpark` issued back to back, rather than a broadcast that every
/// waiter answers in turn through the group's mutex (a chain of wake-ups, one after the other,
/// on the cores the woken writers need).
#[derive(Debug)]
struct Slot {
    /// [`RUN`], [`PARKED`] or [`DURABLE`]; set under the group's lock, read without it.
    state: AtomicU8,
    thread: Thread,
}

/// Not asleep, or woken to look at the group's state again (under its lock).
const RUN: u8 = 0;
/// Asleep until another thread changes the state.
const PARKED: u8 = 1;
/// Covered by a sync and taken off the waiting list: return without the group's lock.
const DURABLE: u8 = 2;

impl Slot {
    fn new() -> Arc<Self> {
        Arc::new(Slot {
            state: AtomicU8::new(RUN),
            thread: std::thread::current(),
        })
    }

    /// Sleeps until another thread changes the state from [`PARKED`]; returns the new state.
    fn sleep(&self) -> u8 {
        loop {
            match self.state.load(Ordering::Acquire) {
                PARKED => std::thread::park(),
                state => return state,
            }
        }
    }

    /// Sets `to` (under the group's lock); returns the thread to unpark if it slept.
    fn set(&self, to: u8) -> Option<Thread> {
        (self.state.swap(to, Ordering::AcqRel) == PARKED).then(|| self.thread.clone())
    }
}

impl GroupState {
    /// Writers waiting whose position no completed sync covers.
    fn uncovered(&self) -> usize {
        self.waiting.iter().filter(|w| w.pos > self.durable).count()
    }

    fn leave(&mut self, slot: &Arc<Slot>) {
        if let Some(i) = self.waiting.iter().position(|w| Arc::ptr_eq(&w.slot, slot)) {
            self.waiting.swap_remove(i);
        }
    }

    /// Takes every waiter that `durable` covers off the list and marks it [`DURABLE`]; returns
    /// the sleeping ones, oldest position first (Bitcask publishes in that order).
    fn release_covered(&mut self) -> Vec<Thread> {
        let durable = self.durable;
        let mut covered: Vec<Waiter> = Vec::new();
        self.waiting.retain(|w| {
            let keep = w.pos > durable;
            if !keep {
                covered.push(Waiter {
                    pos: w.pos,
                    slot: Arc::clone(&w.slot),
                });
            }
            keep
        });
        covered.sort_unstable_by_key(|w| w.pos);
        covered.iter().filter_map(|w| w.slot.set(DURABLE)).collect()
    }

    /// No sync runs any more: the oldest sleeping waiter looks again, and leads unless a
    /// writer arriving meanwhile does. The others sleep on: whoever leads wakes them when its
    /// sync ends. Poisoned: every sleeping waiter looks (and leaves with the error).
    fn wake_next(&mut self, poisoned: bool) -> Vec<Thread> {
        let woken: Vec<Thread> = if poisoned {
            self.waiting
                .iter()
                .filter_map(|w| w.slot.set(RUN))
                .collect()
        } else {
            let asleep = self.waiting.iter();
            let asleep = asleep.filter(|w| w.slot.state.load(Ordering::Relaxed) == PARKED);
            let oldest = asleep.min_by_key(|w| w.pos);
            oldest.and_then(|w| w.slot.set(RUN)).into_iter().collect()
        };
        self.stats.woken_to_look += woken.len() as u64;
        woken
    }
}

/// Unparks the threads a state change concerns, after the group's lock is let go (a woken
/// thread that needs the lock would otherwise find it taken).
fn unpark(threads: Vec<Thread>) {
    for t in threads {
        t.unpark();
    }
}

/// The longest a leader gathers, as a fraction of the last sync's duration: a writer that does
/// not come back costs the others at most this once (the expected count then drops to who came).
const GATHER_FRACTION: u32 = 2;

/// How often a gathering leader looks at the poison flag, which wakes no condition variable.
const POISON_POLL: Duration = Duration::from_millis(1);

impl GroupCommit {
    /// Everything up to `durable` is already durable.
    pub fn new(durable: u64) -> Self {
        GroupCommit {
            state: Mutex::new(GroupState {
                durable,
                ..GroupState::default()
            }),
            arrived: Condvar::new(),
            poison: Poison::new(),
            max_gather: None,
        }
    }

    /// As [`GroupCommit::new`], with a fixed bound on a leader's gathering instead of a
    /// fraction of the last sync's duration (`Duration::ZERO`: never gather). For tests that
    /// must not depend on timing, and for comparisons.
    pub fn with_max_gather(durable: u64, max_gather: Duration) -> Self {
        GroupCommit {
            max_gather: Some(max_gather),
            ..GroupCommit::new(durable)
        }
    }

    /// The poison flag this group commit sets on a failed sync.
    pub fn poison(&self) -> &Poison {
        &self.poison
    }

    /// The highest position known durable.
    pub fn durable(&self) -> u64 {
        self.state.lock().durable
    }

    /// The counters so far.
    pub fn stats(&self) -> GroupCommitStats {
        self.state.lock().stats
    }

    /// Writers inside [`GroupCommit::wait_durable`] whose position is not yet durable.
    pub fn waiting(&self) -> usize {
        self.state.lock().uncovered()
    }

    /// Records that everything up to `pos` is durable (after a sync done outside the group,
    /// such as at a file rotation).
    ///
    /// Writers it releases count as a sync's group: a leader gathering next expects back those,
    /// not a count from before (which may include writers that left meanwhile).
    pub fn mark_durable(&self, pos: u64) {
        let mut st = self.state.lock();
        let released = st
            .waiting
            .iter()
            .filter(|w| w.pos > st.durable && w.pos <= pos);
        let released = released.count();
        if released > 0 {
            st.peak = st.uncovered();
        }
        st.durable = st.durable.max(pos);
        let woken = st.release_covered();
        self.arrived.notify_all();
        drop(st);
        unpark(woken);
    }

    /// Returns once everything up to `pos` is durable. `sync` is called at most once, if this
    /// caller becomes the leader; it must sync the log and return the position its sync covers,
    /// read *before* syncing (and at least `pos`, since the caller appended before calling).
    ///
    /// # Errors
    /// [`Error::Poisoned`] if a sync failed earlier, or the error of the sync this caller led.
    pub fn wait_durable(&self, pos: u64, sync: impl FnOnce() -> Result<u64>) -> Result<()> {
        let mut st = self.state.lock();
        if st.durable >= pos {
            // As the loop below: a poisoned engine answers `Poisoned` even when covered.
            return self.poison.check();
        }
        let slot = Slot::new();
        st.waiting.push(Waiter {
            pos,
            slot: Arc::clone(&slot),
        });
        st.peak = st.peak.max(st.uncovered());
        if st.syncing {
            st.stats.waits += 1;
        }
        if st.gather_for > 0 && st.uncovered() >= st.gather_for {
            self.arrived.notify_one();
        }
        let mut sync = Some(sync);
        loop {
            let result = match self.wait_or_lead(&mut st, pos, &mut sync) {
                Turn::Led(result) => result,
                Turn::Done(result) => {
                    // Woken to lead and found covered (or poisoned): the next sleeping writer
                    // leads instead, or no one would wake the writers behind.
                    if !st.syncing {
                        let woken = st.wake_next(self.poison.is_set());
                        st.leave(&slot);
                        drop(st);
                        unpark(woken);
                        return result;
                    }
                    result
                }
                Turn::Sleep => {
                    slot.state.store(PARKED, Ordering::Release);
                    drop(st);
                    if slot.sleep() == DURABLE {
                        // Taken off the list by whoever covered it: no need for the lock.
                        return self.poison.check();
                    }
                    st = self.state.lock();
                    continue;
                }
            };
            st.leave(&slot);
            return result;
        }
    }

    /// One look at the state: this writer is done (covered, poisoned, or it led a sync), or it
    /// sleeps until a sync ends.
    fn wait_or_lead(
        &self,
        st: &mut MutexGuard<'_, GroupState>,
        pos: u64,
        sync: &mut Option<impl FnOnce() -> Result<u64>>,
    ) -> Turn {
        if let Err(e) = self.poison.check() {
            return Turn::Done(Err(e));
        }
        if st.durable >= pos {
            return Turn::Done(Ok(()));
        }
        if st.syncing {
            return Turn::Sleep;
        }
        let Some(run) = sync.take() else {
            // Unreachable: a leader whose sync fell short of its position poisoned.
            return Turn::Done(Err(Error::invalid(
                "group commit: sync did not cover the position",
            )));
        };
        st.syncing = true;
        self.gather(st, pos);
        if st.durable >= pos || self.poison.is_set() {
            // Covered (a rotation's sync) or poisoned while gathering: no sync to run.
            self.end_sync(st);
            return Turn::Led(self.poison.check());
        }
        Turn::Led(self.lead(st, pos, run))
    }

    /// The leader's wait for the writers it expects (see the type's docs). Returns at once for
    /// a lone writer.
    fn gather(&self, st: &mut MutexGuard<'_, GroupState>, pos: u64) {
        let expected = st.peak;
        if st.uncovered() >= expected {
            return;
        }
        let bound = self.max_gather.unwrap_or(st.last_sync / GATHER_FRACTION);
        if bound.is_zero() {
            return;
        }
        st.stats.gathers += 1;
        st.gather_for = expected;
        self.gather_until(st, pos, bound);
        st.gather_for = 0;
    }

    /// Sleeps until `gather_for` writers wait uncovered, `pos` is covered, the engine is
    /// poisoned or `bound` has passed.
    fn gather_until(&self, st: &mut MutexGuard<'_, GroupState>, pos: u64, bound: Duration) {
        let expected = st.gather_for;
        // A bound too large for the clock is no bound (never a panic with `syncing` set).
        let deadline = Instant::now().checked_add(bound);
        while st.uncovered() < expected && !self.poison.is_set() && st.durable < pos {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                st.stats.gather_timeouts += 1;
                return;
            }
            // The poison is set without a notification (by any thread, through `poison()`):
            // look at it again at least every `POISON_POLL`.
            let slice = now + POISON_POLL;
            let woken = !self
                .arrived
                .wait_until(st, deadline.map_or(slice, |d| d.min(slice)))
                .timed_out();
            if woken && st.uncovered() < expected && st.durable < pos {
                st.stats.early_wakeups += 1;
            }
        }
    }

    /// Runs the leader's sync with the state unlocked, then publishes what it covered or
    /// poisons. A sync that vouches for less than the leader's own position `pos` (a defect of
    /// the closure: the leader appended before it called) poisons too: its write is appended
    /// but would never be acknowledged, and no later leader may build on the log it vouched for.
    fn lead(
        &self,
        st: &mut MutexGuard<'_, GroupState>,
        pos: u64,
        run: impl FnOnce() -> Result<u64>,
    ) -> Result<()> {
        st.peak = st.uncovered();
        st.stats.syncs += 1;
        let started = Instant::now();
        let guarded = || {
            let unwinding = SyncUnwound(self);
            let covered = run();
            std::mem::forget(unwinding);
            covered
        };
        let result = MutexGuard::unlocked(st, guarded).and_then(|covered| short_sync(covered, pos));
        st.last_sync = started.elapsed();
        match result {
            Ok(covered) => {
                st.durable = st.durable.max(covered);
                self.end_sync(st);
                Ok(())
            }
            Err(e) => {
                self.poison.set(&e);
                self.end_sync(st);
                Err(e)
            }
        }
    }

    /// The leader is done (its sync ended, or it was covered or poisoned while gathering): the
    /// writers now covered are told so and the oldest other sleeping writer looks again, each
    /// woken directly, once the state is unlocked.
    fn end_sync(&self, st: &mut MutexGuard<'_, GroupState>) {
        st.syncing = false;
        let mut woken = st.release_covered();
        woken.extend(st.wake_next(self.poison.is_set()));
        if !woken.is_empty() {
            MutexGuard::unlocked(st, || unpark(woken));
        }
    }
}

/// What a writer's look at the group's state decided.
enum Turn {
    /// Return this (not having led a sync).
    Done(Result<()>),
    /// Return this, the outcome of the sync this writer led.
    Led(Result<()>),
    /// Sleep until a sync ends.
    Sleep,
}

/// Held across a leader's sync (with the state unlocked), forgotten when it returns. A sync
/// that panics has an unknown outcome, as a failed one: the group is poisoned, and the sync
/// marked over so that the writers waiting for it wake (they waited for ever: `syncing` was
/// left set and no one notified).
struct SyncUnwound<'a>(&'a GroupCommit);

impl Drop for SyncUnwound<'_> {
    fn drop(&mut self) {
        let gc = self.0;
        gc.poison.set(&Error::Poisoned {
            cause: "a group commit's sync panicked: its outcome is unknown".into(),
        });
        let mut st = gc.state.lock();
        st.syncing = false;
        let woken = st.wake_next(true);
        drop(st);
        unpark(woken);
        gc.arrived.notify_all();
    }
}

/// `Ok(covered)`, or the poisoning error of a sync that covered less than `pos`.
fn short_sync(covered: u64, pos: u64) -> Result<u64> {
    if covered >= pos {
        return Ok(covered);
    }
    Err(Error::invalid(format!(
        "group commit: a sync vouched for position {covered}, below the {pos} it had to cover \
         (an engine's sync path read its end before its own append)"
    )))
}

thread_local! {
    static IN_PERIODIC_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is a [`PeriodicTask`]'s. `SimStorage` counts the syncs such
/// threads complete, which lets the test kit check the `Periodic(d)` promise by observed syncs
/// rather than by wall time.
pub fn in_periodic_task() -> bool {
    IN_PERIODIC_TASK.get()
}

/// A background thread that runs a task every `interval` until the handle is dropped (and once
/// more at that point, if `run_on_stop`). Used for periodic syncs and background checks.
#[derive(Debug)]
pub struct PeriodicTask {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PeriodicTask {
    /// Starts the thread. The task returns `false` to stop itself (for example when the engine
    /// it serves is gone).
    ///
    /// # Errors
    /// An I/O error if the thread cannot be spawned.
    pub fn start(
        name: &str,
        interval: Duration,
        mut task: impl FnMut() -> bool + Send + 'static,
    ) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                IN_PERIODIC_TASK.set(true);
                loop {
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {
                            if !task() {
                                return;
                            }
                        }
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map_err(|e| Error::io("spawn", name, e))?;
        Ok(PeriodicTask {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for PeriodicTask {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panicking task has nothing left to clean up; the engine reports errors itself.
            let _ = thread.join();
        }
    }
}

/// CPU time consumed so far by the calling thread, where the platform tells (Linux), else
/// `None`. Used to report compaction CPU seconds.
pub fn thread_cpu_time() -> Option<Duration> {
    // The first field of schedstat is the time spent on the CPU, in nanoseconds.
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A guarded sync (or cut) that panics has an unknown outcome, as a failed one has: the
    /// flag is set, so that no later sync runs as if nothing had happened.
    #[test]
    fn a_guarded_sync_that_panics_sets_the_flag() {
        let poison = Poison::new();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poison.guard(|| -> Result<()> { panic!("injected: a panic in a guarded sync") })
        }));
        assert!(unwound.is_err(), "the injected panic");
        assert!(
            matches!(poison.check(), Err(Error::Poisoned { .. })),
            "a guarded sync that panicked left the flag clear"
        );
    }

    #[test]
    fn group_commit_shares_syncs_between_waiters() {
        let gc = Arc::new(GroupCommit::new(0));
        let appended = Arc::new(AtomicU64::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gc, appended, syncs) = (gc.clone(), appended.clone(), syncs.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let pos = appended.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.wait_durable(pos, || {
                            let covered = appended.load(Ordering::SeqCst);
                            syncs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_micros(200));
                            Ok(covered)
                        })
                        .unwrap();
                        assert!(gc.durable() >= pos);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(gc.durable(), 1600);
        assert!(syncs.load(Ordering::SeqCst) < 1600, "no sync was shared");
    }

    #[test]
    fn failed_sync_poisons_and_is_never_retried() {
        let gc = GroupCommit::new(0);
        let err = gc
            .wait_durable(1, || Err(Error::invalid("disk on fire")))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        let mut called = false;
        let again = gc.wait_durable(2, || {
            called = true;
            Ok(2)
        });
        assert!(matches!(again, Err(Error::Poisoned { .. })));
        assert!(!called, "a sync ran after a failed sync");
    }

    /// A leader whose sync panics: its outcome is unknown, as a failed sync's is. A writer
    /// that waited for that sync is woken with `Poisoned` (it waited for ever: the leader
    /// unwound with `syncing` set and woke no one), and no later sync runs.
    #[test]
    fn a_panicking_sync_poisons_and_wakes_its_waiters() {
        let gc = Arc::new(GroupCommit::new(0));
        let (started, release) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let leader = {
            let (gc, started, release) = (gc.clone(), started.clone(), release.clone());
            std::thread::spawn(move || {
                gc.wait_durable(1, || {
                    started.store(1, Ordering::SeqCst);
                    while release.load(Ordering::SeqCst) == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    panic!("injected: a panic in the leader's sync")
                })
            })
        };
        while started.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let gc = gc.clone();
            std::thread::spawn(move || tx.send(gc.wait_durable(2, || Ok(2))))
        };
        while gc.stats().waits == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        release.store(1, Ordering::SeqCst);
        assert!(leader.join().is_err(), "the injected panic");
        let woken = rx.recv_timeout(Duration::from_secs(5));
        let woken = woken.expect("a writer waiting for a sync that panicked waited for ever");
        assert!(matches!(woken, Err(Error::Poisoned { .. })), "{woken:?}");
        waiter
            .join()
            .expect("waiter")
            .expect("its answer was received");
        let mut called = false;
        let again = gc.wait_durable(3, || {
            called = true;
            Ok(3)
        });
        assert!(matches!(again, Err(Error::Poisoned { .. })), "{again:?}");
        assert!(!called, "a sync ran after a sync that panicked");
    }

    #[test]
    fn periodic_task_runs_and_stops() {
        let runs = Arc::new(AtomicU64::new(0));
        let r = runs.clone();
        let task = PeriodicTask::start("test", Duration::from_millis(1), move || {
            r.fetch_add(1, Ordering::SeqCst);
            true
        })
        .unwrap();
        while runs.load(Ordering::SeqCst) < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(task);
        let after = runs.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(runs.load(Ordering::SeqCst), after);
    }
}
