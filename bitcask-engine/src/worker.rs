//! The background worker: writes the hint of every newly sealed file and runs the merge policy
//! every `check_interval` and after every rotation. It holds only a weak reference to the
//! engine and stops when the engine is dropped.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use engine_api::{Error, IoClass, Result, Storage};

use crate::datafile::{DATA_START, FileShape, read_seal};
use crate::engine::Inner;
use crate::hint::{self, HintBuilder};
use crate::reader::{Policy, Source, scan_ops};

/// Work handed to the background thread.
pub(crate) enum Job {
    /// Data file `id` was sealed: write its hint, then check the merge policy.
    Sealed(u32),
}

/// The running worker thread; dropping it waits for it to finish its current job.
pub(crate) struct Worker {
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub(crate) fn start(inner: &Arc<Inner>) -> Result<Worker> {
        let (tx, rx) = mpsc::channel();
        inner.set_jobs(Some(tx));
        let weak = Arc::downgrade(inner);
        let interval = inner.opts.merge.check_interval;
        let thread = std::thread::Builder::new()
            .name("bitcask-worker".to_string())
            .spawn(move || run(&weak, &rx, interval))
            .map_err(|e| Error::io("spawn", "bitcask-worker", e))?;
        Ok(Worker {
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // A panic in the worker has nothing left to clean up; open repairs the directory.
            let _ = thread.join();
        }
    }
}

fn run(weak: &Weak<Inner>, rx: &Receiver<Job>, interval: Duration) {
    loop {
        let job = rx.recv_timeout(interval);
        let Some(inner) = weak.upgrade() else {
            return;
        };
        // A panic would end the thread in silence: hints and merges would stop with nothing
        // said. It is recorded as a failed job is, and the worker goes on. A job that unwinds
        // has left nothing that open or a reader trusts half done: a hint or a merge output is
        // a temporary name until it is synced and renamed, a panicking sync poisons
        // (`Poison::guard`), and a merge from its commit point on poisons before it unwinds.
        let step = catch_unwind(AssertUnwindSafe(|| step(&inner, job, rx)));
        match step {
            Ok(true) => {}
            Ok(false) => return,
            Err(panic) => inner.note_panic(&*panic),
        }
    }
}

/// Does one job; `false` once the worker should stop.
fn step(inner: &Inner, job: Result<Job, RecvTimeoutError>, rx: &Receiver<Job>) -> bool {
    if inner.stopping() {
        // Shutting down: no more merges, but hints still pending are cheap and save the
        // next open a scan of their files.
        if let Ok(Job::Sealed(id)) = job {
            inner.hint_or_note(id);
        }
        while let Ok(Job::Sealed(id)) = rx.try_recv() {
            inner.hint_or_note(id);
        }
        return false;
    }
    match job {
        Ok(Job::Sealed(id)) => {
            inner.hint_or_note(id);
            inner.maybe_merge();
        }
        Err(RecvTimeoutError::Timeout) => inner.maybe_merge(),
        Err(RecvTimeoutError::Disconnected) => return false,
    }
    true
}

impl Inner {
    /// Records a panic of the worker where a failed hint or merge is recorded.
    fn note_panic(&self, panic: &(dyn Any + Send)) {
        let what = (panic.downcast_ref::<&str>().copied())
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic without a message");
        let noted = format!("the background worker panicked: {what}");
        self.counters.merges.lock().last_error = Some(noted);
    }

    fn hint_or_note(&self, id: u32) {
        if let Err(e) = self.write_hint(id) {
            self.counters.merges.lock().last_error = Some(e.to_string());
        }
    }

    /// Writes the hint of sealed data file `id` from a scan of it. Nothing to do if the file
    /// was merged away meanwhile.
    ///
    /// A poisoned engine writes none: after a failed sync it cannot show that the file it
    /// would describe is durable, and a hint is what lets open trust a file without scanning it.
    pub(crate) fn write_hint(&self, id: u32) -> Result<()> {
        self.commit.poison().check()?;
        let _merging = self.merge_lock.lock();
        let Some(file) = self.files.read().get(&id).cloned() else {
            return Ok(());
        };
        if !file.is_sealed() {
            return Ok(());
        }
        let path = file.path();
        let reader = self.storage.open(&path, IoClass::Hint)?;
        let seal = read_seal(&*reader, file.nonce(), file.len())?
            .ok_or_else(|| Error::corruption(&path, file.len(), "a sealed data file"))?;
        let policy = if self.opts.salvage {
            Policy::Salvage
        } else {
            Policy::Strict
        };
        let mut builder = HintBuilder::new();
        let src = Source {
            file: &*reader,
            path: &path,
            nonce: file.nonce(),
        };
        let outcome = scan_ops(src, (DATA_START, seal.offset), policy, &mut |op| {
            builder.add(&op);
            Ok(())
        })?;
        let shape = FileShape {
            records: outcome.records,
            ..FileShape::sealed(file.base_seq(), file.nonce(), &seal)
        };
        hint::write(
            &self.storage,
            self.commit.poison(),
            &self.dir,
            id,
            &builder.finish(id, &shape),
        )
    }
}
