//! [`CompactionManager`]: decides when compactions start and keeps them from colliding.
//!
//! [`CompactionManager::check_and_compact`] runs after every flush commit and after every
//! finished job. It asks the picker for work given the current version and the running jobs'
//! reservations, reserves the pick's (level, key range) pairs and files, and starts the job on
//! its own thread, until the picker finds nothing or `max_background_compactions` jobs run.
//! Reservations are released when a job ends, whatever the outcome. Thresholds come from the
//! live options. Jobs resumed at open go first, under the same rules (no collision, not while
//! paused), and while one is queued the picker starts nothing. `compact()` pauses the manager,
//! waits for running jobs, runs the queued resumes itself, and runs a full compaction holding
//! every level.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;

use engine_api::{CompactionSummary, Error, Result};
use parking_lot::{Condvar, Mutex};

use super::job::{self, Job, JobKind};
use super::picker::{self, LevelConfig, Range, Reservation};
use super::task::Cancel;
use crate::db::Inner;

/// A reserved (level, user-key range); `None` ends are unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedRange {
    /// The level.
    pub level: u32,
    /// Smallest user key reserved.
    pub smallest: Option<Vec<u8>>,
    /// Largest user key reserved.
    pub largest: Option<Vec<u8>>,
}

/// A running job, as [`CompactionManager::active_jobs`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobInfo {
    /// The job id (also its compaction log's file number).
    pub id: u64,
    /// What kind of job.
    pub kind: JobKind,
    /// The level its inputs come from (0 for a full compaction).
    pub level: u32,
    /// The level its outputs go to.
    pub output_level: u32,
    /// Its input tables.
    pub inputs: Vec<u64>,
    /// Subtasks running in parallel.
    pub subcompactions: usize,
    /// What it reserves.
    pub reserved: Vec<ReservedRange>,
}

/// Jobs started since open, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Trivial moves.
    pub moves: u64,
    /// Merges, full compactions included.
    pub merges: u64,
    /// Jobs resumed after a crash interrupted them.
    pub resumed: u64,
    /// Outputs those resumed jobs kept from their interrupted runs instead of rewriting.
    pub reused_outputs: u64,
    /// Compaction logs set aside as void at open ([`CompactionManager::voided_logs`]).
    pub voided_logs: u64,
}

#[derive(Default)]
struct State {
    running: Vec<JobInfo>,
    /// Jobs ever started on a thread: `wait_idle` tells from it whether a job came and went
    /// during its check.
    starts: u64,
    busy: HashSet<u64>,
    reservations: Vec<Reservation>,
    /// Full compactions waiting or running: no new job starts meanwhile.
    paused: usize,
    threads: Vec<JoinHandle<()>>,
    resumes: Vec<Job>,
    /// Compaction debt at the last check (bytes over target), for write stalls.
    debt_bytes: u64,
    /// Jobs started since open, by kind: moves, merges, resumed.
    started: [u64; 3],
    /// Finished outputs of interrupted jobs that their resumed runs kept.
    reused_outputs: u64,
    /// A job failed on something retrying cannot fix (a damaged input, a rejected edit): no
    /// more background jobs, rather than the same failing job again and again; writes are
    /// refused with this cause (nothing would ever lift a stall) and stats report it.
    halted: Option<String>,
    /// Compaction logs found at open and set aside as void: (file name, why).
    voided_logs: Vec<(String, String)>,
}

/// See the module documentation.
pub struct CompactionManager {
    engine: OnceLock<Weak<Inner>>,
    state: Mutex<State>,
    changed: Condvar,
    cancel: Cancel,
}

impl std::fmt::Debug for CompactionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactionManager")
            .field("active_jobs", &self.active_jobs())
            .finish_non_exhaustive()
    }
}

fn info(job: &Job) -> JobInfo {
    JobInfo {
        id: job.id(),
        kind: job.kind,
        level: job.plan.level,
        output_level: job.plan.output_level,
        inputs: job.plan.inputs.iter().map(|i| i.number).collect(),
        subcompactions: job.plan.subtasks.len(),
        reserved: job
            .reserve
            .iter()
            .map(|(level, r)| ReservedRange {
                level: u32::try_from(*level).unwrap_or(u32::MAX),
                smallest: r.lo.clone(),
                largest: r.hi.clone(),
            })
            .collect(),
    }
}

impl CompactionManager {
    pub(crate) fn new() -> Self {
        CompactionManager {
            engine: OnceLock::new(),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            cancel: Cancel::default(),
        }
    }

    /// Binds the manager to its engine and queues the jobs recovery found interrupted.
    pub(crate) fn attach(&self, inner: &Arc<Inner>, resumes: Vec<Job>) {
        let _ = self.engine.set(Arc::downgrade(inner));
        self.state.lock().resumes = resumes;
    }

    fn engine(&self) -> Option<Arc<Inner>> {
        self.engine.get().and_then(Weak::upgrade)
    }

    /// The engine's test hooks.
    #[cfg(feature = "testing")]
    pub(crate) fn hooks(&self) -> &Arc<crate::testing::TestHooks> {
        &self.cancel.hooks
    }

    /// Replaces the test hooks (before the engine starts anything).
    #[cfg(feature = "testing")]
    pub(crate) fn use_hooks(&mut self, hooks: Arc<crate::testing::TestHooks>) {
        self.cancel.hooks = hooks;
    }

    /// The jobs running now.
    pub fn active_jobs(&self) -> Vec<JobInfo> {
        self.state.lock().running.clone()
    }

    /// Why background compaction stopped for good, if it did (a job failed on something
    /// retrying cannot fix).
    pub(crate) fn halted(&self) -> Option<String> {
        self.state.lock().halted.clone()
    }

    /// `Err(Error::Poisoned)` with the cause once background compaction has stopped for good:
    /// a write then would only grow L0 without bound, or wait forever at the stop threshold.
    pub(crate) fn check_running(&self) -> Result<()> {
        match self.halted() {
            None => Ok(()),
            Some(cause) => Err(Error::Poisoned { cause }),
        }
    }

    fn halt(&self, e: &Error) {
        let mut st = self.state.lock();
        st.halted
            .get_or_insert_with(|| format!("background compaction stopped: {e}"));
        self.changed.notify_all();
    }

    /// Compaction logs set aside as void at open (damaged, or a stale copy of another job's
    /// log): (file name, why). Losing a log loses no data: the job's inputs are still live.
    pub fn voided_logs(&self) -> Vec<(String, String)> {
        self.state.lock().voided_logs.clone()
    }

    pub(crate) fn set_voided_logs(&self, voided: Vec<(String, String)>) {
        self.state.lock().voided_logs = voided;
    }

    /// Compaction debt (bytes over level targets) at the last check.
    pub(crate) fn debt_bytes(&self) -> u64 {
        self.state.lock().debt_bytes
    }

    /// Jobs started since open, by kind.
    pub fn jobs_started(&self) -> JobCounts {
        let st = self.state.lock();
        let [moves, merges, resumed] = st.started;
        JobCounts {
            moves,
            merges,
            resumed,
            reused_outputs: st.reused_outputs,
            voided_logs: st.voided_logs.len() as u64,
        }
    }

    /// Starts every job the picker finds room for. Runs after every flush commit and every
    /// finished job; cheap when there is nothing to do.
    pub fn check_and_compact(&self) {
        let Some(inner) = self.engine() else {
            return;
        };
        if inner.read_only() || inner.poison().is_set() || self.cancel.is_set() {
            return;
        }
        let o = &inner.opts;
        let cfg = LevelConfig {
            l0_trigger: o.l0_compaction_trigger,
            base_bytes: o.max_bytes_for_level_base,
            multiplier: o.level_size_multiplier,
        };
        let mut st = self.state.lock();
        if st.halted.is_some() {
            return;
        }
        self.start_resumes(&mut st, &inner);
        loop {
            let version = inner.versions.current();
            let levels = picker::summarize(&version);
            let shape = picker::shape(&levels, &st.busy, &cfg);
            st.debt_bytes = shape.debt_bytes;
            // A queued resume's inputs are not reserved yet: no pick may take them first.
            if !o.auto_compaction
                || st.paused > 0
                || !st.resumes.is_empty()
                || st.running.len() >= o.max_background_compactions
            {
                return;
            }
            let cutoff = job::seq_cutoff(&inner);
            let Some(pick) = picker::pick(&levels, &shape, &st.busy, &st.reservations, cutoff)
            else {
                return;
            };
            let job = job::from_pick(&inner, &pick, &levels);
            if !self.start(&mut st, &inner, job) {
                // The same pick would only fail again: stop here, the next check retries.
                return;
            }
        }
    }

    /// Starts the queued resumed jobs that collide with no running job. None starts while a
    /// full compaction waits or runs: it runs them itself, before it plans over their inputs.
    fn start_resumes(&self, st: &mut State, inner: &Arc<Inner>) {
        if st.paused > 0 {
            return;
        }
        for job in std::mem::take(&mut st.resumes) {
            if Self::collides(st, &job) {
                st.resumes.push(job);
            } else {
                // A refused spawn queues the job again.
                let _ = self.start(st, inner, job);
            }
        }
    }

    /// True if `job` uses a reserved file or intersects a reservation on one of its levels.
    fn collides(st: &State, job: &Job) -> bool {
        let busy = job.plan.inputs.iter().any(|i| st.busy.contains(&i.number));
        busy || job.reserve.iter().any(|(level, range)| {
            st.reservations
                .iter()
                .any(|r| r.level == *level && r.range.intersects(range))
        })
    }

    fn reserve(st: &mut State, job: &Job) {
        st.busy.extend(job.plan.inputs.iter().map(|i| i.number));
        st.reservations
            .extend(job.reserve.iter().map(|(level, range)| Reservation {
                job: job.id(),
                level: *level,
                range: range.clone(),
            }));
        st.running.push(info(job));
    }

    /// Counts `job` as started: once it runs (a refused spawn starts nothing).
    fn count_started(st: &mut State, job: (JobKind, usize)) {
        let (kind, reused) = job;
        let kind = match kind {
            JobKind::Move => 0,
            JobKind::Resumed => 2,
            _ => 1,
        };
        if let Some(n) = st.started.get_mut(kind) {
            *n += 1;
        }
        st.reused_outputs += reused as u64;
    }

    fn release(&self, job: &Job) {
        let mut st = self.state.lock();
        for i in &job.plan.inputs {
            st.busy.remove(&i.number);
        }
        st.reservations.retain(|r| r.job != job.id());
        st.running.retain(|r| r.id != job.id());
        self.changed.notify_all();
    }

    /// Reserves for `job` and starts it on its own thread; false if no thread could be
    /// spawned (the reservation is given back).
    fn start(&self, st: &mut State, inner: &Arc<Inner>, job: Job) -> bool {
        Self::reserve(st, &job);
        let id = job.id();
        let inputs: Vec<u64> = job.plan.inputs.iter().map(|i| i.number).collect();
        // A resumed job exists nowhere else: kept to queue again if no thread takes it.
        let retry = (job.kind == JobKind::Resumed).then(|| job.clone());
        let counted = (job.kind, job.done.len());
        st.threads.retain(|t| !t.is_finished());
        let bg = Arc::clone(inner);
        let spawned = if spawn_refused(&self.cancel) {
            Err(std::io::Error::other("the test hooks refused the spawn"))
        } else {
            std::thread::Builder::new()
                .name("lsm-compaction".into())
                .spawn(move || {
                    let manager = &bg.compactions;
                    let result = job::run(&bg, &job, &manager.cancel);
                    if let Err(e) = &result {
                        bg.poison_on_io(e);
                        manager.halt(e);
                    }
                    bg.obsolete.drain();
                    manager.release(&job);
                    manager.hook_after_release();
                    bg.notify_bg();
                    manager.check_and_compact();
                })
        };
        match spawned {
            Ok(t) => {
                st.starts += 1;
                Self::count_started(st, counted);
                st.threads.push(t);
                true
            }
            Err(_) => {
                // No thread: give the reservation back; the next check tries again (after a
                // flush, a finished job, or from a writer stalled at the stop threshold).
                for n in inputs {
                    st.busy.remove(&n);
                }
                st.reservations.retain(|r| r.job != id);
                st.running.retain(|r| r.id != id);
                st.resumes.extend(retry);
                false
            }
        }
    }

    /// Returns once no job runs and the picker finds nothing more to start (or cannot start
    /// anything: poisoned, read-only, shutting down): the tree has settled.
    pub fn wait_idle(&self) {
        loop {
            let flushing = self.engine().is_some_and(|i| {
                !i.poison().is_set() && (i.bg.lock().flushing || !i.current().imms.is_empty())
            });
            // A check made while nothing runs, that starts nothing, means nothing is due. A
            // job that starts and finishes in between does not count: its thread checks for the
            // work it left only after it has left `running`, so `running` alone can look idle
            // while work is due.
            let (idle_before, starts_before) = self.idle_and_starts();
            self.check_and_compact();
            self.hook_after_idle_check();
            let mut st = self.state.lock();
            let started = st.starts != starts_before;
            if idle_before && !started && st.running.is_empty() && !flushing {
                return;
            }
            self.changed
                .wait_for(&mut st, std::time::Duration::from_millis(50));
        }
    }

    fn idle_and_starts(&self) -> (bool, u64) {
        let st = self.state.lock();
        (st.running.is_empty(), st.starts)
    }

    /// Runs a full compaction on the calling thread: pause the picker, wait for running jobs,
    /// run the queued resumes, flush, merge every table into the last level holding every level, then resume.
    pub(crate) fn run_full(&self, inner: &Arc<Inner>) -> Result<CompactionSummary> {
        let _one_at_a_time = inner.compaction_lock.lock();
        self.state.lock().paused += 1;
        let result = self.full_paused(inner);
        self.state.lock().paused -= 1;
        self.check_and_compact();
        result
    }

    fn full_paused(&self, inner: &Arc<Inner>) -> Result<CompactionSummary> {
        self.wait_until_none_runs(inner)?;
        self.run_queued_resumes(inner)?;
        inner.flush_all()?;
        let version = inner.versions.current();
        let levels = picker::summarize(&version);
        drop(version);
        let Some(inputs) = picker::full_compaction(&levels) else {
            return Ok(CompactionSummary::default());
        };
        let job = job::full(inner, &levels, inputs);
        {
            let mut st = self.state.lock();
            // Paused, with no job running and none queued: nothing can hold what this takes.
            debug_assert!(!Self::collides(&st, &job) && st.resumes.is_empty());
            Self::reserve(&mut st, &job);
            Self::count_started(&mut st, (job.kind, job.done.len()));
        }
        let result = job::run(inner, &job, &Cancel::default());
        self.release(&job);
        let summary = result
            .inspect_err(|e| inner.poison_on_io(e))?
            .unwrap_or_default();
        // One more (empty) record, so the commit is not the manifest's last record and its
        // inputs may go now rather than at the next commit (`crate::obsolete`).
        inner
            .versions
            .log_and_apply(crate::version::VersionEdit::default(), &[], |_| {})
            .inspect_err(|e| inner.poison_on_io(e))?;
        inner.obsolete.drain();
        Ok(summary)
    }

    /// Waits (paused: nothing new starts) until no background job runs.
    fn wait_until_none_runs(&self, inner: &Inner) -> Result<()> {
        let mut st = self.state.lock();
        while !st.running.is_empty() {
            inner.poison().check()?;
            self.changed
                .wait_for(&mut st, std::time::Duration::from_millis(50));
        }
        Ok(())
    }

    /// Runs, on the calling thread, the resumed jobs still queued (no thread could be spawned
    /// for them), so that a full compaction never plans over the inputs of a job that could
    /// still commit. A failure ends it as a background job's would: poison on I/O, else halt.
    fn run_queued_resumes(&self, inner: &Arc<Inner>) -> Result<()> {
        loop {
            let job = {
                let mut st = self.state.lock();
                if st.resumes.is_empty() {
                    return Ok(());
                }
                let job = st.resumes.remove(0);
                Self::reserve(&mut st, &job);
                Self::count_started(&mut st, (job.kind, job.done.len()));
                job
            };
            let result = job::run(inner, &job, &Cancel::default());
            if let Err(e) = &result {
                inner.poison_on_io(e);
                self.halt(e);
            }
            inner.obsolete.drain();
            self.release(&job);
            result?;
        }
    }

    /// Stops every job (each at its next checkpoint: finished outputs stay, recorded in its log,
    /// to resume at the next open) and waits for their threads.
    pub(crate) fn shutdown(&self) {
        self.cancel.set();
        loop {
            let threads = std::mem::take(&mut self.state.lock().threads);
            if threads.is_empty() {
                return;
            }
            for t in threads {
                // A panicked job has nothing left to clean up; its log resumes it.
                let _ = t.join();
            }
        }
    }
}

impl CompactionManager {
    fn hook_after_release(&self) {
        #[cfg(feature = "testing")]
        self.cancel.hooks.fire_after_job_release();
    }

    fn hook_after_idle_check(&self) {
        #[cfg(feature = "testing")]
        self.cancel.hooks.fire_after_idle_check();
    }
}

#[cfg(feature = "testing")]
fn spawn_refused(cancel: &Cancel) -> bool {
    cancel.hooks.spawn_fails()
}

#[cfg(not(feature = "testing"))]
fn spawn_refused(_: &Cancel) -> bool {
    false
}

impl Default for CompactionManager {
    fn default() -> Self {
        CompactionManager::new()
    }
}

/// The range a resumed job reserves: whole levels (its inputs' exact ranges are not kept).
pub(crate) fn whole_levels(levels: &[usize]) -> Vec<(usize, Range)> {
    levels.iter().map(|&l| (l, Range::all())).collect()
}
