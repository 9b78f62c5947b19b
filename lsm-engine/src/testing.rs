//! Test hooks (feature `testing`): points where a test stops an engine thread, so that a race a
//! stress test would hit only by luck happens every time. Each hook fires once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// A one-shot hook.
pub type Hook = Box<dyn FnOnce() + Send>;

/// A one-shot hook in a compaction task, given a probe of the job's cancel flag.
pub type TaskHook = Box<dyn FnOnce(&dyn Fn() -> bool) + Send>;

/// The hooks of one engine: [`crate::LsmEngine::test_hooks`].
#[derive(Default)]
pub struct TestHooks {
    between_read_steps: Mutex<Option<Hook>>,
    before_snapshot: Mutex<Option<Hook>>,
    before_writer_lock: Mutex<Option<Hook>>,
    after_first_merge_entry: Mutex<Option<TaskHook>>,
    after_job_release: Mutex<Option<Hook>>,
    after_idle_check: Mutex<Option<Hook>>,
    fail_spawns: AtomicBool,
    entries_after_cancel: AtomicU64,
}

impl std::fmt::Debug for TestHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHooks").finish_non_exhaustive()
    }
}

fn fire(slot: &Mutex<Option<Hook>>) {
    let hook = slot.lock().take();
    if let Some(hook) = hook {
        hook();
    }
}

impl TestHooks {
    /// Runs `hook` once, in the next point read, scan or `explain_get`, between taking the
    /// super-version and taking the sequence number (whichever comes first).
    pub fn between_read_steps(&self, hook: impl FnOnce() + Send + 'static) {
        *self.between_read_steps.lock() = Some(Box::new(hook));
    }

    /// Runs `hook` once, in the next `snapshot()`, just before it pins its sequence number.
    pub fn before_snapshot(&self, hook: impl FnOnce() + Send + 'static) {
        *self.before_snapshot.lock() = Some(Box::new(hook));
    }

    /// Runs `hook` once, in the next write or `flush()`, after its poison check and before it
    /// takes the writer lock (a write also after its stall): where a sync failing on another
    /// thread finds a writer that will rotate the WAL.
    pub fn before_writer_lock(&self, hook: impl FnOnce() + Send + 'static) {
        *self.before_writer_lock.lock() = Some(Box::new(hook));
    }

    /// Runs `hook` once, in the next background compaction task, after its first entry; the
    /// hook gets a probe that tells whether the job has been cancelled.
    pub fn after_first_merge_entry(&self, hook: impl FnOnce(&dyn Fn() -> bool) + Send + 'static) {
        *self.after_first_merge_entry.lock() = Some(Box::new(hook));
    }

    /// Runs `hook` once, in the next compaction job's thread, after the job has left the
    /// running set and before that thread checks for more work.
    pub fn after_job_release(&self, hook: impl FnOnce() + Send + 'static) {
        *self.after_job_release.lock() = Some(Box::new(hook));
    }

    /// Runs `hook` once, in the next [`crate::CompactionManager::wait_idle`], after its own
    /// check for work and before it decides whether the tree has settled.
    pub fn after_idle_check(&self, hook: impl FnOnce() + Send + 'static) {
        *self.after_idle_check.lock() = Some(Box::new(hook));
    }

    /// Makes every compaction thread spawn fail (`true`) or succeed again (`false`). Set before
    /// [`crate::LsmEngine::open_with_hooks`], it also refuses the spawns of jobs resumed at open.
    pub fn fail_spawns(&self, fail: bool) {
        self.fail_spawns.store(fail, Ordering::SeqCst);
    }

    /// Entries compaction tasks merged after their job was cancelled.
    pub fn entries_after_cancel(&self) -> u64 {
        self.entries_after_cancel.load(Ordering::SeqCst)
    }

    pub(crate) fn fire_between_read_steps(&self) {
        fire(&self.between_read_steps);
    }

    pub(crate) fn fire_before_snapshot(&self) {
        fire(&self.before_snapshot);
    }

    pub(crate) fn fire_before_writer_lock(&self) {
        fire(&self.before_writer_lock);
    }

    pub(crate) fn fire_after_job_release(&self) {
        fire(&self.after_job_release);
    }

    pub(crate) fn fire_after_idle_check(&self) {
        fire(&self.after_idle_check);
    }

    pub(crate) fn fire_after_first_merge_entry(&self, cancelled: &dyn Fn() -> bool) {
        let hook = self.after_first_merge_entry.lock().take();
        if let Some(hook) = hook {
            hook(cancelled);
        }
    }

    pub(crate) fn spawn_fails(&self) -> bool {
        self.fail_spawns.load(Ordering::SeqCst)
    }

    pub(crate) fn note_entry_after_cancel(&self) {
        self.entries_after_cancel.fetch_add(1, Ordering::SeqCst);
    }
}
